"""The controller with a real Airflow 3: the bucket is mirrored into Airflow's folders, as Composer does.

kopf against kmock, DAGs through the Cloud Storage emulator, and a real Airflow (api-server,
scheduler, dag-processor) answering the controller's REST calls and batched polls.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import kopf
import pytest
from google.cloud import storage

from controller.airflow_api import AirflowClient, DagInfo, DagRunInfo
from controller.airflow_link import AirflowControl
from controller.config import ControllerConfig
from controller.reconciler import BACKUP_NOW_ANNOTATION, backup_now_run_id
from devstack.bucket_mirror import BucketMirror
from tests.controller.conftest import (
    NAMESPACE,
    airflow3_config,
    condition,
    create_policy,
    end_run,
    patch_policy,
    put_report,
    retried,
    status_of,
)
from tests.fixtures.airflow_api import AirflowServer, broken_dag_source, dag_source
from tests.fixtures.kube import events_for, eventually, stored
from vmbackup.model.policy import dag_id_for
from vmbackup.model.report import DiskResult, InstanceResult, RunReport, latest_report_object_name

SPEC: dict[str, Any] = {
    "project": "shop-prod-1",
    "instances": [{"name": "web-1", "zone": "us-central1-a"}],
    "schedule": "0 2 * * *",
}
AIRFLOW_WAIT = 120  # Airflow parses a new file within seconds; generous for a loaded CI machine

pytestmark = pytest.mark.usefixtures("kubeconfig")


@pytest.fixture
def name() -> str:
    """A fresh policy (and DAG) per test: Airflow's database outlives each test."""
    return f"web-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def config(gcs_bucket: storage.Bucket, airflow3_api: AirflowServer, mirrored: BucketMirror) -> ControllerConfig:
    return airflow3_config(gcs_bucket, airflow3_api, wait_mode_refresh_seconds=1.0)


async def dag(airflow: AirflowClient, dag_id: str) -> DagInfo | None:
    return next((d for d in await airflow.list_dags() if d.dag_id == dag_id), None)


async def test_a_dag_airflow_loads_makes_the_policy_ready(kube, operator, name) -> None:
    async with operator():
        await create_policy(kube, name, SPEC)

        ready = await eventually(lambda: condition(kube, name, "Ready").get("status") == "True", within=AIRFLOW_WAIT)

        assert ready
        assert condition(kube, name, "AirflowReachable")["status"] == "True"
        assert condition(kube, name, "DagImportError")["status"] == "False"
        assert status_of(kube, name)["result"] == "Pending"
        assert status_of(kube, name)["nextRun"]


async def test_suspend_pauses_the_dag_in_airflow_and_resume_unpauses_it(kube, operator, airflow, name) -> None:
    dag_id = dag_id_for(NAMESPACE, name)
    async with operator():
        await create_policy(kube, name, SPEC)
        await eventually(lambda: condition(kube, name, "Ready").get("status") == "True", within=AIRFLOW_WAIT)

        await patch_policy(kube, name, {"metadata": {"generation": 2}, "spec": {"suspend": True}})
        paused = await eventually(lambda: _paused(airflow, dag_id, True), within=AIRFLOW_WAIT)
        await eventually(lambda: status_of(kube, name).get("result") == "Suspended")
        suspended = await eventually(lambda: condition(kube, name, "Suspended").get("status") == "True")

        await patch_policy(kube, name, {"metadata": {"generation": 3}, "spec": {"suspend": False}})
        unpaused = await eventually(lambda: _paused(airflow, dag_id, False), within=AIRFLOW_WAIT)

    assert paused
    assert suspended
    assert unpaused


async def _paused(airflow: AirflowClient, dag_id: str, wanted: bool) -> bool:
    found = await dag(airflow, dag_id)
    return found is not None and found.is_paused is wanted


async def manual_run(airflow: AirflowClient, dag_id: str) -> DagRunInfo | None:
    """The DAG's newest run if it was triggered on demand (a new DAG may get a scheduled run first)."""
    run = (await airflow.latest_runs([dag_id])).get(dag_id)
    return run if run is not None and run.run_type == "manual" else None


async def test_backup_now_triggers_a_run_and_clears_the_annotation(kube, operator, airflow, name) -> None:
    dag_id = dag_id_for(NAMESPACE, name)
    async with operator():
        # Suspended: the triggered run stays queued instead of calling Compute Engine.
        await create_policy(kube, name, {**SPEC, "suspend": True}, annotations={BACKUP_NOW_ANNOTATION: "please"})

        run = await eventually(lambda: manual_run(airflow, dag_id), within=AIRFLOW_WAIT)
        await eventually(
            lambda: BACKUP_NOW_ANNOTATION not in (stored(kube, NAMESPACE, name)["metadata"].get("annotations") or {})
        )
        triggered = await eventually(lambda: [e for e in events_for(kube, name) if e["reason"] == "BackupTriggered"])

    assert run.run_id in triggered[0]["message"]


async def test_a_finished_run_fills_the_status_and_is_announced_once(kube, operator, airflow, gcs_bucket, name) -> None:
    dag_id = dag_id_for(NAMESPACE, name)
    async with operator() as controller:
        await create_policy(kube, name, {**SPEC, "suspend": True}, annotations={BACKUP_NOW_ANNOTATION: "x"})
        run_id = (await eventually(lambda: manual_run(airflow, dag_id), within=AIRFLOW_WAIT)).run_id

        # What the DAG's last task does when a run succeeds: the report in the bucket; Airflow marks the run.
        write_report(gcs_bucket, name, run_id, snapshots=["web-1-boot-20261125-0200-3f9a1c2b"])
        await end_run(airflow, dag_id, run_id, "success")

        last_run = await eventually(
            lambda: (
                status_of(kube, name).get("lastRun", {}).get("state") == "success" and status_of(kube, name)["lastRun"]
            ),
            within=AIRFLOW_WAIT,
        )
        succeeded = await eventually(lambda: condition(kube, name, "LastBackupSucceeded").get("status") == "True")
        polls = controller.metrics.value("vmbackup_airflow_polls_total", {"outcome": "ok"})
        await eventually(
            lambda: controller.metrics.value("vmbackup_airflow_polls_total", {"outcome": "ok"}) >= polls + 2
        )

        announced = [e for e in events_for(kube, name) if e["reason"] == "BackupSucceeded"]
        last_success = await eventually(  # the gauge itself, never read the instant the event appeared
            lambda: controller.metrics.value(
                "vmbackup_last_success_timestamp_seconds", {"namespace": NAMESPACE, "name": name}
            )
        )

    assert last_run["runId"] == run_id
    assert succeeded
    assert status_of(kube, name)["lastSnapshots"] == ["web-1-boot-20261125-0200-3f9a1c2b"]
    assert status_of(kube, name)["lastSnapshotTime"]
    assert len(announced) == 1
    assert last_success > 0


async def test_a_failed_run_is_announced_as_a_warning_and_counted(kube, operator, airflow, name) -> None:
    dag_id = dag_id_for(NAMESPACE, name)
    async with operator() as controller:
        await create_policy(kube, name, {**SPEC, "suspend": True}, annotations={BACKUP_NOW_ANNOTATION: "x"})
        run_id = (await eventually(lambda: manual_run(airflow, dag_id), within=AIRFLOW_WAIT)).run_id

        await end_run(airflow, dag_id, run_id, "failed")

        failed = await eventually(
            lambda: [e for e in events_for(kube, name) if e["reason"] == "BackupFailed"], within=AIRFLOW_WAIT
        )
        counted = await eventually(
            lambda: controller.metrics.value("vmbackup_failed_runs_total", {"namespace": NAMESPACE, "name": name})
        )
        # The status patch of the same refresh may land after the Event and the counter: awaited here, inside.
        not_succeeded = await eventually(lambda: condition(kube, name, "LastBackupSucceeded").get("status") == "False")

    assert failed[0]["type"] == "Warning"
    assert run_id in failed[0]["message"]
    assert not_succeeded
    assert counted == 1


def write_report(bucket: storage.Bucket, name: str, run_id: str, snapshots: list[str]) -> None:
    now = datetime.now(UTC)
    report = RunReport(
        namespace=NAMESPACE,
        name=name,
        dag_id=dag_id_for(NAMESPACE, name),
        run_id=run_id,
        consistency="stop",
        result="succeeded",
        started_at=now,
        finished_at=now,
        instances=[
            InstanceResult(
                instance="web-1",
                zone="us-central1-a",
                disks=[
                    DiskResult(disk="web-1-boot", zone="us-central1-a", snapshot=s, state="READY") for s in snapshots
                ],
            )
        ],
    )
    put_report(bucket, latest_report_object_name(NAMESPACE, name), report)


async def test_an_import_error_is_reported_and_the_policy_is_not_ready(kube, operator, gcs_bucket, name) -> None:
    dag_id = dag_id_for(NAMESPACE, name)
    async with operator():
        await create_policy(kube, name, SPEC)
        await eventually(lambda: condition(kube, name, "Ready").get("status") == "True", within=AIRFLOW_WAIT)

        # The file breaks under Airflow (e.g. an incompatible plugin): the controller must say so.
        gcs_bucket.blob(f"dags/{dag_id}.py").upload_from_string(broken_dag_source("vmbackup plugin too old"))

        error = await eventually(
            lambda: (
                condition(kube, name, "DagImportError").get("status") == "True"
                and condition(kube, name, "DagImportError")
            ),
            within=AIRFLOW_WAIT,
        )
        ready = condition(kube, name, "Ready")

    assert "vmbackup plugin too old" in error["message"]
    assert (ready["status"], ready["reason"]) == ("False", "DagImportError")


async def test_the_same_backup_now_request_starts_one_run(airflow3_api: AirflowServer, airflow, name) -> None:
    dag_id = f"idle_{name.replace('-', '_')}"
    airflow3_api.write_dag(dag_id, dag_source(dag_id))
    airflow3_api.wait_for_dag(dag_id, timeout=AIRFLOW_WAIT)
    control = AirflowControl(airflow)
    run_id = "manual__backup-now-0123456789abcdef"

    # Each asked again while Airflow cannot answer: what is checked is what it answers, twice.
    first = await retried(lambda: control.trigger_run(dag_id, run_id), "the first trigger")
    again = await retried(lambda: control.trigger_run(dag_id, run_id), "the second trigger")

    assert first == again == run_id
    assert airflow3_api.get(f"/dags/{dag_id}/dagRuns")["total_entries"] == 1


def test_a_backup_now_request_names_its_run_by_object_and_annotation_value() -> None:
    def body(uid: str, value: str) -> kopf.Body:
        return kopf.Body({"metadata": {"uid": uid, "annotations": {BACKUP_NOW_ANNOTATION: value}}})

    assert backup_now_run_id(body("u1", "2026-11-25T10:00:00Z")) == backup_now_run_id(
        body("u1", "2026-11-25T10:00:00Z")
    )
    assert backup_now_run_id(body("u1", "2026-11-25T10:00:00Z")) != backup_now_run_id(
        body("u1", "2026-11-25T11:00:00Z")
    )
    assert backup_now_run_id(body("u1", "x")) != backup_now_run_id(body("u2", "x"))


def wait_mode_in_bucket(bucket: storage.Bucket, name: str) -> str | None:
    """The wait mode the DAG file in the bucket carries as data."""
    blob = bucket.blob(f"dags/{dag_id_for(NAMESPACE, name)}.py")
    if not blob.exists():
        return None
    text = blob.download_as_text()
    return next((mode for mode in ("reschedule", "deferrable") if f'"waitMode":"{mode}"' in text), None)


async def test_dags_follow_the_triggerer_of_their_airflow(kube, operator, gcs_bucket, airflow3_api, name) -> None:
    """No triggerer: reschedule sensors; one starts: the DAG is rendered again, deferrable; it stops: back again."""
    async with operator():
        await create_policy(kube, name, SPEC)
        without = await eventually(lambda: wait_mode_in_bucket(gcs_bucket, name), within=AIRFLOW_WAIT)

        triggerer = airflow3_api.triggerer_running()
        await asyncio.to_thread(triggerer.__enter__)
        try:
            with_it = await eventually(
                lambda: wait_mode_in_bucket(gcs_bucket, name) == "deferrable", within=AIRFLOW_WAIT
            )
        finally:
            await asyncio.to_thread(triggerer.__exit__, None, None, None)
        gone = await eventually(lambda: wait_mode_in_bucket(gcs_bucket, name) == "reschedule", within=AIRFLOW_WAIT)

    assert (without, with_it, gone) == ("reschedule", True, True)
