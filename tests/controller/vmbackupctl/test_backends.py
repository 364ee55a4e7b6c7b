"""vmbackupctl's reads from the other backends: snapshots from the Compute Engine simulator, logs from a real Airflow.

Policies live in kmock as in test_commands.py; Compute Engine is the project's simulator reached by
the real google-cloud-compute client through VMBACKUP_COMPUTE_ENDPOINT (as the DAG's tasks reach it),
and Airflow is ``airflow standalone``'s parts from the airflow_api fixture, reached with the
controller's VMBACKUP_AIRFLOW_* settings.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import kmock
import pytest
from google.cloud import compute_v1, storage

from controller.airflow_errors import AirflowError, AirflowUnavailable
from devstack.gce_simulator import ComputeSimulator
from tests.controller.vmbackupctl.test_commands import SPEC, put_policy, vmbackupctl
from tests.fixtures.airflow_api import AirflowServer, dag_source
from tests.fixtures.gce import GCE_PROJECT, GceClients
from tests.fixtures.gcs import free_port
from vmbackup.model import labels
from vmbackup.model.report import RunReport, latest_report_object_name


@pytest.fixture
def cluster(kube: kmock.KubernetesEmulator, kubeconfig: Path) -> kmock.KubernetesEmulator:
    """kmock as the cluster of the current kubeconfig context, with shop/wordpress in it."""
    put_policy(kube, "shop", "wordpress", spec={**SPEC, "project": GCE_PROJECT})
    return kube


# ---- snapshots -------------------------------------------------------------------------------------


@pytest.fixture
def compute(gce_sim: ComputeSimulator, gce_clients: GceClients, monkeypatch: pytest.MonkeyPatch) -> GceClients:
    """The simulator as the Compute Engine the CLI talks to."""
    monkeypatch.setenv("VMBACKUP_COMPUTE_ENDPOINT", gce_sim.base_url)
    return gce_clients


def take_snapshot(
    compute: GceClients,
    zone: str,
    disk: str,
    name: str,
    namespace: str,
    policy: str | None,
    project: str = GCE_PROJECT,
) -> None:
    """A snapshot as a backup run takes it (labels and all), in `project` (snapshots.insert into a backup project),
    waited for like the DAG waits."""
    snapshot_labels = {labels.MANAGED_BY: labels.MANAGED_BY_VALUE, labels.CONSISTENCY: "none"}
    if policy is not None:
        snapshot_labels |= {labels.POLICY_NAMESPACE: namespace, labels.POLICY_NAME: policy, labels.INSTANCE: disk}
    if project != GCE_PROJECT:
        source = f"https://www.googleapis.com/compute/v1/projects/{GCE_PROJECT}/zones/{zone}/disks/{disk}"
        resource = compute_v1.Snapshot(name=name, labels=snapshot_labels, source_disk=source)
        inserted = compute.snapshots.insert_unary(project=project, snapshot_resource=resource)
        compute.global_operations.wait(project=project, operation=inserted.name)
        return
    op = compute.disks.create_snapshot_unary(
        project=GCE_PROJECT,
        zone=zone,
        disk=disk,
        snapshot_resource=compute_v1.Snapshot(name=name, labels=snapshot_labels),
    )
    compute.zone_operations.wait(project=GCE_PROJECT, zone=zone, operation=op.name)


@pytest.mark.usefixtures("cluster")
async def test_snapshots_lists_exactly_the_policys_newest_first(compute: GceClients) -> None:
    take_snapshot(compute, "us-central1-c", "wordpress-1-vm", "wp-b-oldest", "shop", "wordpress")
    take_snapshot(compute, "us-central1-c", "wordpress-1-vm", "wp-other-policy", "shop", "blog")
    take_snapshot(compute, "us-central1-c", "wordpress-1-vm", "wp-other-namespace", "staging", "wordpress")
    take_snapshot(compute, "us-central1-c", "wordpress-1-vm", "wp-unlabelled", "shop", None)
    take_snapshot(compute, "us-central1-a", "web-1", "wp-c-middle", "shop", "wordpress")
    take_snapshot(compute, "us-central1-c", "wordpress-1-vm", "wp-a-newest", "shop", "wordpress")

    result = await vmbackupctl("snapshots", "wordpress", "-n", "shop")

    assert result.code == 0, result.stderr
    assert [line.split()[0] for line in result.lines] == ["NAME", "wp-a-newest", "wp-c-middle", "wp-b-oldest"]


@pytest.mark.usefixtures("cluster")
async def test_snapshots_table_has_gclouds_columns(compute: GceClients) -> None:
    take_snapshot(compute, "us-central1-a", "web-1", "wp-1", "shop", "wordpress")

    result = await vmbackupctl("snapshots", "wordpress", "-n", "shop")

    assert result.lines[0].split() == ["NAME", "DISK_SIZE_GB", "SRC_DISK", "STATUS"]
    name, size, source, status = result.lines[1].split()
    assert (name, source) == ("wp-1", "us-central1-a/disks/web-1")
    assert size.isdigit()
    assert status in ("READY", "UPLOADING", "CREATING")


@pytest.mark.usefixtures("cluster")
async def test_snapshots_json_is_compute_engines_resources(compute: GceClients) -> None:
    take_snapshot(compute, "us-central1-a", "web-1", "wp-1", "shop", "wordpress")

    result = await vmbackupctl("snapshots", "wordpress", "-n", "shop", "-o", "json")

    [snapshot] = json.loads(result.stdout)
    assert snapshot["name"] == "wp-1"
    assert snapshot["labels"][labels.POLICY_NAME] == "wordpress"
    assert snapshot["sourceDisk"].endswith("/zones/us-central1-a/disks/web-1")


async def test_a_policy_with_a_backup_project_lists_its_snapshots_there(
    kube: kmock.KubernetesEmulator, kubeconfig: Path, compute: GceClients
) -> None:
    spec = {**SPEC, "project": GCE_PROJECT, "snapshot": {"project": "shop-backups"}}
    put_policy(kube, "shop", "vault", spec=spec)
    take_snapshot(compute, "us-central1-c", "wordpress-1-vm", "wp-vault", "shop", "vault", project="shop-backups")
    take_snapshot(compute, "us-central1-a", "web-1", "wp-in-workload", "shop", "vault")

    result = await vmbackupctl("snapshots", "vault", "-n", "shop")

    assert result.code == 0, result.stderr
    assert [line.split()[0] for line in result.lines] == ["NAME", "wp-vault"]


@pytest.mark.usefixtures("cluster", "compute")
async def test_a_policy_without_snapshots_says_so_and_succeeds() -> None:
    result = await vmbackupctl("snapshots", "wordpress", "-n", "shop")

    assert (result.code, result.stdout) == (0, "")
    assert result.stderr == f"No snapshots of shop/wordpress in project {GCE_PROJECT}.\n"


@pytest.mark.usefixtures("cluster")
async def test_compute_engine_unreachable_is_exit_4(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("VMBACKUP_COMPUTE_ENDPOINT", endpoint)

    result = await vmbackupctl("snapshots", "wordpress", "-n", "shop")

    assert result.code == 4
    assert result.stderr == (
        f"vmbackupctl: error: cannot reach Compute Engine at {endpoint}: connection refused; "
        "check VMBACKUP_COMPUTE_ENDPOINT\n"
    )


# ---- logs --------------------------------------------------------------------------------------------


@pytest.fixture
def airflow_settings(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean slate of the controller's VMBACKUP_* Airflow settings."""
    for name in ("COMPOSER_ENVIRONMENT", "BUCKET", "AIRFLOW_URL", "AIRFLOW_AUTH", "AIRFLOW_USERNAME"):
        monkeypatch.delenv(f"VMBACKUP_{name}", raising=False)
    monkeypatch.delenv("VMBACKUP_AIRFLOW_PASSWORD", raising=False)
    return monkeypatch


@pytest.mark.usefixtures("cluster")
async def test_logs_without_an_airflow_configured_is_a_usage_error(airflow_settings: pytest.MonkeyPatch) -> None:
    result = await vmbackupctl("logs", "wordpress", "-n", "shop")

    assert result.code == 2
    assert "set VMBACKUP_COMPOSER_ENVIRONMENT, or VMBACKUP_BUCKET with VMBACKUP_AIRFLOW_URL" in result.stderr


@pytest.mark.usefixtures("cluster")
async def test_logs_with_airflow_down_is_exit_4(airflow_settings: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    airflow_settings.setenv("VMBACKUP_BUCKET", "composer-bucket")
    airflow_settings.setenv("VMBACKUP_AIRFLOW_URL", url)
    airflow_settings.setenv("VMBACKUP_AIRFLOW_AUTH", "none")

    result = await vmbackupctl("logs", "wordpress", "-n", "shop")

    assert result.code == 4
    assert result.stderr.startswith(f"vmbackupctl: error: cannot reach Airflow at {url}")
    assert result.stderr.rstrip("\n").endswith("check VMBACKUP_AIRFLOW_URL (or the Composer environment) and try again")


AIRFLOW_DEADLINE_SECONDS = 180.0  # a loaded CI machine parses and runs slowly; a deadline, not a sleep


@pytest.fixture
def airflow(airflow3_api: AirflowServer, airflow_settings: pytest.MonkeyPatch) -> AirflowServer:
    """The real Airflow 3, configured for the CLI exactly as the controller would be."""
    airflow_settings.setenv("VMBACKUP_BUCKET", "composer-bucket")
    airflow_settings.setenv("VMBACKUP_AIRFLOW_URL", airflow3_api.base_url)
    airflow_settings.setenv("VMBACKUP_AIRFLOW_AUTH", "jwt")
    airflow_settings.setenv("VMBACKUP_AIRFLOW_USERNAME", airflow3_api.username)
    airflow_settings.setenv("VMBACKUP_AIRFLOW_PASSWORD", airflow3_api.password)
    return airflow3_api


async def parsed_dag(airflow: AirflowServer, dag_id: str, source: str) -> None:
    """Write a DAG file and wait until Airflow's API knows the DAG."""
    airflow.write_dag(dag_id, source)
    async with airflow.client(timeout_seconds=60) as client:
        await until_airflow_says(lambda: client.get_dag(dag_id), what=f"DAG {dag_id} parsed")


async def finished_run(airflow: AirflowServer, dag_id: str, source: str) -> str:
    """A run of a freshly parsed DAG, started through the REST API and waited for; its run id."""
    await parsed_dag(airflow, dag_id, source)
    async with airflow.client(timeout_seconds=60) as client:
        run = await client.trigger_run(dag_id)

        async def finished() -> bool:
            return (await client.get_run(dag_id, run.run_id)).finished

        await until_airflow_says(finished, what=f"run {run.run_id} finished")
    return run.run_id


async def until_airflow_says(probe: Callable[[], Awaitable[object]], *, what: str) -> None:
    """Poll Airflow until the probe is truthy; a busy or not-yet-knowing Airflow is asked again."""

    deadline = time.monotonic() + AIRFLOW_DEADLINE_SECONDS
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = await probe()
        except (AirflowUnavailable, AirflowError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"Airflow did not report {what} within {AIRFLOW_DEADLINE_SECONDS:g}s (last: {last!r})")


@pytest.mark.usefixtures("cluster")
async def test_logs_of_a_failed_run_show_the_failed_task_first_with_why(airflow: AirflowServer) -> None:
    run_id = await finished_run(
        airflow, "vmbackup__shop__wordpress", dag_source("vmbackup__shop__wordpress", fail_with="disk on fire")
    )

    result = await vmbackupctl("logs", "wordpress", "-n", "shop")

    assert result.code == 0, result.stderr
    assert result.lines[0] == f"# run {run_id} of vmbackup__shop__wordpress: failed"
    assert result.lines[2].startswith("==> FAILED snapshot (failed, try ")
    assert "disk on fire" in result.stdout


async def test_logs_of_an_unknown_run_is_exit_3(cluster: kmock.KubernetesEmulator, airflow: AirflowServer) -> None:
    put_policy(cluster, "shop", "blog")
    await parsed_dag(airflow, "vmbackup__shop__blog", dag_source("vmbackup__shop__blog"))

    result = await vmbackupctl("logs", "blog", "-n", "shop", "--run", "manual__1999-01-01")

    assert result.code == 3
    assert "DAG vmbackup__shop__blog has no run 'manual__1999-01-01'" in result.stderr


async def test_logs_of_a_dag_airflow_does_not_know_is_exit_3(
    cluster: kmock.KubernetesEmulator, airflow: AirflowServer
) -> None:
    put_policy(cluster, "shop", "never-uploaded")

    result = await vmbackupctl("logs", "never-uploaded", "-n", "shop")

    assert result.code == 3
    assert "does not know DAG vmbackup__shop__never-uploaded" in result.stderr


# ---- describe's run report -------------------------------------------------------------------------


def run_report(run_id: str) -> RunReport:
    return RunReport.model_validate(
        {
            "namespace": "shop",
            "name": "wordpress",
            "dagId": "vmbackup__shop__wordpress",
            "runId": run_id,
            "consistency": "stop",
            "result": "failed",
            "instances": [
                {
                    "instance": "wordpress-1-vm",
                    "zone": "us-central1-c",
                    "priorStatus": "RUNNING",
                    "finalStatus": "RUNNING",
                    "downtimeSeconds": 42.5,
                    "disks": [
                        {"disk": "wordpress-1-vm", "zone": "us-central1-c", "snapshot": "wp-1", "state": "READY"},
                        {"disk": "wordpress-data", "zone": "us-central1-c", "state": "FAILED", "error": "quota"},
                    ],
                }
            ],
            "errors": [
                {"step": "snapshot", "instance": "wordpress-1-vm", "disk": "wordpress-data", "message": "quota"}
            ],
        }
    )


@pytest.fixture
def bucket_settings(airflow_settings: pytest.MonkeyPatch, gcs_bucket: storage.Bucket) -> storage.Bucket:
    """The controller's settings naming the emulated Composer bucket (Airflow is not asked by describe)."""
    airflow_settings.setenv("VMBACKUP_BUCKET", gcs_bucket.name)
    airflow_settings.setenv("VMBACKUP_AIRFLOW_URL", "http://airflow.invalid")
    airflow_settings.setenv("VMBACKUP_AIRFLOW_AUTH", "none")
    return gcs_bucket


async def test_describe_shows_the_last_runs_report_from_the_bucket(
    kube: kmock.KubernetesEmulator, kubeconfig: Path, bucket_settings: storage.Bucket
) -> None:
    run_id = "manual__2026-11-25T09:12:00+00:00"
    put_policy(kube, "shop", "wordpress", status={"result": "Failed", "lastRun": {"runId": run_id, "state": "failed"}})
    blob = bucket_settings.blob(latest_report_object_name("shop", "wordpress"))
    blob.upload_from_string(run_report(run_id).model_dump_json(by_alias=True), content_type="application/json")

    result = await vmbackupctl("describe", "wordpress", "-n", "shop")

    assert result.code == 0, result.stderr
    report = result.lines[result.lines.index(f"Run Report ({run_id}, stop, failed):") :]
    assert report[1:] == [
        "  wordpress-1-vm (us-central1-c): RUNNING -> RUNNING, down 42.5s",
        "    wordpress-1-vm: wp-1 READY",
        "    wordpress-data: <no snapshot> FAILED (quota)",
        "  Error at snapshot (wordpress-1-vm wordpress-data): quota",
    ]


async def test_describe_without_a_report_says_why_and_succeeds(
    kube: kmock.KubernetesEmulator, kubeconfig: Path, bucket_settings: storage.Bucket
) -> None:
    put_policy(kube, "shop", "wordpress", status={"result": "Failed", "lastRun": {"runId": "r1", "state": "failed"}})

    result = await vmbackupctl("describe", "wordpress", "-n", "shop")

    assert result.code == 0, result.stderr
    assert result.lines[-1] == f"Run Report:  <none> (run r1 left no report in gs://{bucket_settings.name})"


async def test_logs_of_an_unknown_task_is_exit_3(cluster: kmock.KubernetesEmulator, airflow: AirflowServer) -> None:
    put_policy(cluster, "shop", "ghost")
    run_id = await finished_run(airflow, "vmbackup__shop__ghost", dag_source("vmbackup__shop__ghost"))

    result = await vmbackupctl("logs", "ghost", "-n", "shop", "--task", "tier_web.stop")

    assert result.code == 3
    assert result.stderr == f"vmbackupctl: error: run {run_id} of vmbackup__shop__ghost has no task 'tier_web.stop'\n"
