"""vmbackupctl coverage: the cluster's policies (kmock), the VMs from the Compute Engine simulator, the grants from
the tenancy map."""

from __future__ import annotations

import json
from pathlib import Path

import kmock
import pytest

from devstack.gce_simulator import ComputeSimulator
from tests.controller.conftest import COVERAGE_TENANCY, DEV_PROJECT, UNGRANTED_PROJECT
from tests.controller.test_coverage import DB_SUSPENDED, SHOP_WEB, WORDPRESS
from tests.controller.vmbackupctl.test_commands import put_policy, vmbackupctl
from tests.fixtures.gce import GCE_PROJECT


@pytest.fixture
def tenancy_file(tmp_path: Path) -> str:
    path = tmp_path / "tenancy.yaml"
    path.write_text(json.dumps(COVERAGE_TENANCY))
    return str(path)


@pytest.fixture
def cluster(
    kube: kmock.KubernetesEmulator, kubeconfig: Path, coverage_world: ComputeSimulator, monkeypatch: pytest.MonkeyPatch
) -> kmock.KubernetesEmulator:
    """shop's policies in the cluster, the coverage world as its Compute Engine."""
    monkeypatch.setenv("VMBACKUP_COMPUTE_ENDPOINT", coverage_world.base_url)
    put_policy(kube, "shop", "wordpress", spec=WORDPRESS)
    put_policy(kube, "shop", "web", spec=SHOP_WEB)
    put_policy(kube, "shop", "db", spec={**DB_SUSPENDED, "suspend": True})
    put_policy(
        kube, "ops", "app", spec={"project": GCE_PROJECT, "instances": [{"name": "app-1", "zone": "us-central1-a"}]}
    )
    return kube


@pytest.mark.usefixtures("cluster")
async def test_the_table_lists_each_granted_vm_with_its_policies(tenancy_file: str) -> None:
    result = await vmbackupctl("coverage", "-n", "shop", "--tenancy", tenancy_file)
    assert result.code == 0, result.stderr
    rows = [line.split() for line in result.lines]
    assert rows[0] == ["PROJECT", "ZONE", "INSTANCE", "STATUS", "PROTECTED", "POLICIES"]
    assert rows[1:] == [
        [GCE_PROJECT, "us-central1-a", "app-1", "RUNNING", "NO", "<none>"],  # ops protects it; -n shop counts shop's
        [GCE_PROJECT, "us-central1-a", "db-1", "RUNNING", "NO", "shop/db", "(suspended)"],
        [GCE_PROJECT, "us-central1-a", "web-1", "RUNNING", "yes", "shop/web"],
        [GCE_PROJECT, "us-central1-b", "web-2", "RUNNING", "yes", "shop/web"],
        [GCE_PROJECT, "us-central1-c", "wordpress-1-vm", "RUNNING", "yes", "shop/wordpress"],
        [DEV_PROJECT, "us-east1-b", "dev-web", "RUNNING", "NO", "<none>"],
    ]
    assert "3 of 6 VMs unprotected in 2 project(s), counting the policies of namespace shop only" in result.stderr


@pytest.mark.usefixtures("cluster")
async def test_all_namespaces_counts_every_namespaces_policies(tenancy_file: str) -> None:
    result = await vmbackupctl("coverage", "-A", "--unprotected", "-o", "json", "--tenancy", tenancy_file)
    assert result.code == 0, result.stderr
    found = json.loads(result.stdout)
    assert [(i["project"], i["instance"]) for i in found["instances"]] == [
        (GCE_PROJECT, "db-1"),
        (DEV_PROJECT, "dev-web"),
    ]
    assert found["unprotectedByProject"] == {GCE_PROJECT: 1, DEV_PROJECT: 1}
    assert UNGRANTED_PROJECT not in result.stdout


@pytest.mark.usefixtures("cluster")
async def test_a_namespace_without_grants_lists_nothing(tenancy_file: str) -> None:
    result = await vmbackupctl("coverage", "-n", "billing", "--tenancy", tenancy_file)
    assert result.code == 0
    assert result.stdout == ""
    assert "grants no project to namespace billing" in result.stderr


@pytest.mark.usefixtures("cluster")
async def test_without_a_tenancy_map_it_is_a_usage_error_naming_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VMBACKUP_TENANCY_FILE", raising=False)
    monkeypatch.delenv("VMBACKUP_TENANCY", raising=False)
    result = await vmbackupctl("coverage", "-n", "shop")
    assert result.code == 2
    assert "--tenancy FILE" in result.stderr


@pytest.mark.usefixtures("cluster")
async def test_compute_engine_unreachable_is_exit_4(tenancy_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMBACKUP_COMPUTE_ENDPOINT", "http://127.0.0.1:9")
    result = await vmbackupctl("coverage", "-n", "shop", "--tenancy", tenancy_file)
    assert result.code == 4
    assert "cannot reach Compute Engine at http://127.0.0.1:9" in result.stderr
