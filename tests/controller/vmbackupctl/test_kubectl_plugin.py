"""``kubectl vmbackup``: the real kubectl finds the ``kubectl-vmbackup`` entry point on PATH and runs the CLI."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import kmock

from tests.fixtures.kube import policy_object, policy_url

SPEC = {"project": "demo-project", "instances": [{"name": "web-1", "zone": "us-central1-a"}], "schedule": "0 2 * * *"}
ENTRY_POINTS = Path(sys.executable).parent  # where the project's console scripts are installed


async def kubectl(kubectl_bin: Path, *argv: str) -> tuple[int, str, str]:
    env = {**os.environ, "PATH": f"{ENTRY_POINTS}{os.pathsep}{os.environ.get('PATH', '')}"}
    process = await asyncio.create_subprocess_exec(
        str(kubectl_bin), *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    return int(process.returncode or 0), out.decode(), err.decode()


async def test_kubectl_lists_the_plugin(kubectl_bin: Path) -> None:
    code, out, _ = await kubectl(kubectl_bin, "plugin", "list", "--name-only")

    assert code == 0
    assert "kubectl-vmbackup" in out.split()


async def test_help_names_the_program_as_typed(kubectl_bin: Path) -> None:
    code, out, _ = await kubectl(kubectl_bin, "vmbackup", "--help")

    assert code == 0
    assert out.startswith("usage: kubectl vmbackup ")
    assert "  kubectl vmbackup get -A" in out


async def test_kubectl_vmbackup_get_reads_the_kubeconfig_cluster(
    kube: kmock.KubernetesEmulator, kubeconfig: Path, kubectl_bin: Path
) -> None:
    async with kube.post(policy_url("shop"), json=policy_object("shop", "web", SPEC)) as response:
        assert response.status in (200, 201)

    code, out, err = await kubectl(kubectl_bin, "vmbackup", "get", "-n", "shop")

    assert code == 0, err
    assert out.splitlines()[1].split()[0] == "web"


async def test_errors_name_the_plugin(kubectl_bin: Path) -> None:
    code, _, err = await kubectl(kubectl_bin, "vmbackup", "get", "web", "-A")

    assert code == 2
    assert err.splitlines()[-1].startswith("kubectl vmbackup: error:")
