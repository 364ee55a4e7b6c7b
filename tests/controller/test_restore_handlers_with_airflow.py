"""VMRestores with a real Airflow 3: the controller uploads the restore DAG, Airflow parses it from the mirrored
bucket, the controller triggers its one run, and the status follows the restore report the run writes.

What the run's tasks do to Compute Engine is covered by tests/plugins/vmbackup/restore/test_dag_run.py; here the report is written as the
DAG writes it, and the run is marked finished through Airflow's API, so the test depends on no cloud.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import kmock
import pytest
from google.cloud import storage

from controller.airflow_api import AirflowClient
from controller.config import AirflowCredentials, ControllerConfig
from controller.restore_handlers import run_id_for
from devstack.bucket_mirror import BucketMirror
from tests.controller.conftest import (
    NAMESPACE,
    Starter,
    create_policy,
    create_restore,
    put_report,
    restore_status,
    restore_url,
)
from tests.fixtures.airflow_api import AirflowServer
from tests.fixtures.kube import RESTORES, events_for, eventually
from vmbackup.model.report import RestoreReport, restore_report_object_name
from vmbackup.model.restore import restore_dag_id_for

POLICY_SPEC: dict[str, Any] = {
    "project": "shop-prod-1",
    "instances": [{"name": "db-1", "zone": "us-central1-a"}],
    "suspend": True,  # the policy's own DAG stays paused: only the restore runs
}
AIRFLOW_WAIT = 120

pytestmark = pytest.mark.usefixtures("kubeconfig")


@pytest.fixture
def names() -> tuple[str, str]:
    """A fresh policy and restore per test: Airflow's database outlives each test."""
    suffix = uuid.uuid4().hex[:8]
    return f"db-{suffix}", f"db-back-{suffix}"


@pytest.fixture
def config(gcs_bucket: storage.Bucket, airflow3_api: AirflowServer, mirrored: BucketMirror) -> ControllerConfig:
    return ControllerConfig(
        bucket=gcs_bucket.name,
        airflow_url=airflow3_api.base_url,
        airflow_auth=AirflowCredentials(mode="jwt", username=airflow3_api.username, password=airflow3_api.password),
        poll_interval_seconds=1.0,
        metrics_port=0,
        liveness_endpoint=None,
        tenancy_text=json.dumps({"namespaces": {NAMESPACE: {"projects": ["shop-prod-1"]}}}),
    )


async def create_both(kube: kmock.KubernetesEmulator, policy: str, restore: str) -> None:
    await create_policy(kube, policy, POLICY_SPEC)
    await create_restore(kube, restore, {"policyName": policy})


async def runs_of(airflow: AirflowClient, dag_id: str) -> list[str]:
    data = await airflow.raw_request("GET", f"/api/v2/dags/{dag_id}/dagRuns")
    return [run["dag_run_id"] for run in data["dag_runs"]]


def write_report(bucket: storage.Bucket, name: str, run_id: str, phase: str, **fields: Any) -> None:
    """What the restore DAG writes at each phase."""
    report = RestoreReport(
        namespace=NAMESPACE,
        name=name,
        dag_id=restore_dag_id_for(NAMESPACE, name),
        run_id=run_id,
        phase=phase,
        source_instance="db-1",
        source_zone="us-central1-a",
        instance=name,
        zone="us-central1-a",
        snapshot_run="r0123456789a",
        snapshots=["db-1-0123456789ab", "db-1-data-0123456789ab"],
        updated_at=datetime.now(UTC),
        **fields,
    )
    put_report(bucket, restore_report_object_name(NAMESPACE, name), report)


async def test_a_restore_triggers_exactly_one_run_even_across_restarts(
    kube: kmock.KubernetesEmulator, operator: Starter, airflow: AirflowClient, names: tuple[str, str]
) -> None:
    policy, restore = names
    dag_id = restore_dag_id_for(NAMESPACE, restore)
    async with operator():
        await create_both(kube, policy, restore)
        run_id = await eventually(lambda: restore_status(kube, restore).get("runId"), within=AIRFLOW_WAIT)
    async with operator():
        await eventually(lambda: [e for e in events_for(kube, restore) if e["reason"] == "RestoreTriggered"])
        runs = await runs_of(airflow, dag_id)
        await airflow.raw_request("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", json_body={"state": "failed"})

    assert run_id == run_id_for(f"uid-{restore}")
    assert runs == [run_id]
    assert len([e for e in events_for(kube, restore) if e["reason"] == "RestoreTriggered"]) == 1


async def test_the_status_follows_the_restore_report(
    kube: kmock.KubernetesEmulator,
    operator: Starter,
    airflow: AirflowClient,
    gcs_bucket: storage.Bucket,
    names: tuple[str, str],
) -> None:
    policy, restore = names
    dag_id = restore_dag_id_for(NAMESPACE, restore)
    async with operator():
        await create_both(kube, policy, restore)
        run_id = await eventually(lambda: restore_status(kube, restore).get("runId"), within=AIRFLOW_WAIT)

        write_report(gcs_bucket, restore, run_id, "CreatingDisks")
        await eventually(lambda: restore_status(kube, restore).get("phase") == "CreatingDisks")
        write_report(
            gcs_bucket,
            restore,
            run_id,
            "Succeeded",
            created_disks=[restore, f"{restore}-db-1-data"],
            message=f"instance {restore} restored",
        )
        await airflow.raw_request("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", json_body={"state": "success"})
        status = await eventually(
            lambda: restore_status(kube, restore).get("phase") == "Succeeded" and restore_status(kube, restore)
        )
        announced = await eventually(
            lambda: [e for e in events_for(kube, restore) if e["reason"] == "RestoreSucceeded"]
        )

    assert (status["instance"], status["snapshot"], status["snapshotRun"]) == (
        restore,
        "db-1-0123456789ab",
        "r0123456789a",
    )
    assert status["createdDisks"] == [restore, f"{restore}-db-1-data"]
    assert announced[0]["type"] == "Normal"


async def test_a_run_that_fails_without_a_report_fails_the_restore(
    kube: kmock.KubernetesEmulator, operator: Starter, airflow: AirflowClient, names: tuple[str, str]
) -> None:
    policy, restore = names
    dag_id = restore_dag_id_for(NAMESPACE, restore)
    async with operator():
        await create_both(kube, policy, restore)
        run_id = await eventually(lambda: restore_status(kube, restore).get("runId"), within=AIRFLOW_WAIT)

        await airflow.raw_request("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", json_body={"state": "failed"})
        status = await eventually(
            lambda: restore_status(kube, restore).get("phase") == "Failed" and restore_status(kube, restore)
        )

    assert f"restore run {run_id} failed before reporting" in status["message"]


def deletion_retried(kube: kmock.KubernetesEmulator, name: str) -> bool:
    """kopf's progress record says the deletion handler ran and was told to try again later."""
    annotations = kube.objects[RESTORES, NAMESPACE, name].raw["metadata"].get("annotations") or {}
    progress = [json.loads(v) for k, v in annotations.items() if k.endswith("remove-restore-dag")]
    return any(p.get("retries", 0) >= 1 and not p.get("success") for p in progress)


async def test_deleting_a_restore_in_flight_keeps_its_dag_until_the_run_ends(
    kube: kmock.KubernetesEmulator,
    operator: Starter,
    airflow: AirflowClient,
    gcs_bucket: storage.Bucket,
    names: tuple[str, str],
) -> None:
    policy, restore = names
    dag_id = restore_dag_id_for(NAMESPACE, restore)
    dag_object = f"dags/{dag_id}.py"
    async with operator():
        await create_both(kube, policy, restore)
        run_id = await eventually(lambda: restore_status(kube, restore).get("runId"), within=AIRFLOW_WAIT)

        async with kube.delete(restore_url(restore)):
            pass
        held = await eventually(lambda: deletion_retried(kube, restore), within=AIRFLOW_WAIT)
        kept = gcs_bucket.get_blob(dag_object) is not None

        await airflow.raw_request("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", json_body={"state": "failed"})
        await eventually(lambda: kube.objects[RESTORES, NAMESPACE, restore].deleted, within=AIRFLOW_WAIT)

    assert held
    assert kept
    assert gcs_bucket.get_blob(dag_object) is None
