"""The entry point: `python -m controller` reads flags and VMBACKUP_* variables, and refuses bad ones clearly."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import kmock
from google.cloud import storage

from tests.fixtures.gcs import free_port
from tests.fixtures.kube import eventually, policy_object, policy_url
from tests.fixtures.tools import REPO_ROOT

UPLOADED_ONE = 'vmbackup_uploads_total{kind="dag"} 1.0'


def run_controller(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VMBACKUP_")} | env
    return subprocess.run(
        [sys.executable, "-m", "controller", *args],
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_valid_configuration_is_accepted(tmp_path: Path) -> None:
    tenancy = tmp_path / "tenancy.yaml"
    tenancy.write_text("namespaces: {shop: {projects: [shop-prod-1]}}\n")
    result = run_controller(
        "--check-config",
        "--bucket=composer-bucket",
        "--airflow-url=http://airflow:8080",
        f"--tenancy-file={tenancy}",
        VMBACKUP_AIRFLOW_AUTH="none",
    )
    assert result.returncode == 0, result.stderr
    assert "composer-bucket" in result.stdout


def test_a_bad_variable_stops_the_controller_naming_it() -> None:
    result = run_controller("--check-config", VMBACKUP_POLL_INTERVAL="often")
    assert result.returncode == 2
    assert "VMBACKUP_POLL_INTERVAL" in result.stderr


def test_a_malformed_tenancy_map_stops_the_controller(tmp_path: Path) -> None:
    tenancy = tmp_path / "tenancy.yaml"
    tenancy.write_text("namespaces: [not, a, map]\n")
    result = run_controller("--check-config", f"--tenancy-file={tenancy}")
    assert result.returncode == 2
    assert "tenancy map" in result.stderr


async def test_the_controller_process_serves_a_cluster_from_kubeconfig(
    kube: kmock.KubernetesEmulator, kubeconfig: Path, gcs_bucket: storage.Bucket, tmp_path: Path
) -> None:
    metrics_port, liveness_port = free_port(), free_port()
    log = tmp_path / "controller.log"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VMBACKUP_")} | {
        "KUBECONFIG": str(kubeconfig),
        "VMBACKUP_BUCKET": gcs_bucket.name,
        "VMBACKUP_AIRFLOW_URL": f"http://127.0.0.1:{free_port()}",
        "VMBACKUP_AIRFLOW_AUTH": "none",
        "VMBACKUP_TENANCY": '{"allowAllProjects": true}',
        "VMBACKUP_METRICS_PORT": str(metrics_port),
        "VMBACKUP_LIVENESS": f"http://127.0.0.1:{liveness_port}/healthz",
    }
    with log.open("w") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "controller", cwd=REPO_ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        spec = {"project": "shop-prod-1", "instances": [{"name": "web-1", "zone": "us-central1-a"}]}
        async with kube.post(policy_url("shop"), json=policy_object("shop", "web", spec)) as response:
            assert response.status in (200, 201)

        await eventually(lambda: gcs_bucket.get_blob("dags/vmbackup__shop__web.py"))

        async def counted() -> str | None:  # the counter moves just after the object is written
            text = await asyncio.to_thread(_get, f"http://127.0.0.1:{metrics_port}/metrics")
            return text if text is not None and UPLOADED_ONE in text else None

        metrics = await eventually(counted, interval=0.2, what="the upload counted in /metrics")
        alive = await eventually(
            lambda: asyncio.to_thread(_get, f"http://127.0.0.1:{liveness_port}/healthz"), what="the liveness probe"
        )
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.wait_for(process.wait(), timeout=60)

    assert UPLOADED_ONE in metrics
    assert alive
    assert exit_code == 0
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any("Uploaded gs://" in r.get("message", "") for r in records), log.read_text()[-2000:]


def _get(url: str) -> str | None:
    """The answer's body; None on any failure (refused, timed out, not 2xx): "not yet" for a wait."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return str(response.read().decode())
    except OSError:  # URLError and HTTPError among them
        return None
