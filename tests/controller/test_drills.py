"""Restore drills in the controller, with kmock for the Kubernetes API and the GCS emulator for the bucket: no
policy gets a drill DAG file of its own (the shared drill DAG is shipped with the plugins; the controller starts
drills in it: tests/controller/test_drill_runs_with_airflow.py), and the drill report a drill writes becomes
status.verification, the RestoreVerified condition, an Event and the drill metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from google.cloud import storage

from controller.conditions import RESTORE_VERIFIED
from controller.config import ControllerConfig
from dags_templates.render_drill import SHARED_DRILL_DAG_FILE_ID, shared_drill_dag_source
from tests.controller.conftest import NAMESPACE, condition, create_policy, put_report, status_of
from tests.fixtures.kube import events_for, eventually, offline_config
from vmbackup.model.drill import SHARED_DRILL_DAG_ID, DrillReport, drill_dag_id_for, drill_report_object_name

NAME = "db"
VERIFICATION = {"schedule": "0 4 * * 0", "network": "drills", "guestCheck": {"serialPortRegex": "login: $"}}
SPEC: dict[str, Any] = {
    "project": "shop-prod-1",
    "instances": [{"name": "db-1", "zone": "us-central1-a"}],
    "verification": VERIFICATION,
}
TENANCY = {"namespaces": {"shop": {"projects": ["shop-prod-1"]}}}
DRILL_OBJECT = f"dags/{drill_dag_id_for(NAMESPACE, NAME)}.py"  # the policy's own, as earlier versions had it
SHARED_DRILL_OBJECT = f"dags/{SHARED_DRILL_DAG_FILE_ID}.py"

pytestmark = pytest.mark.usefixtures("kubeconfig")


@pytest.fixture
def config(gcs_bucket: storage.Bucket) -> ControllerConfig:
    return offline_config(gcs_bucket.name, TENANCY)  # nothing listens at its Airflow: drills are read from the bucket


def write_report(bucket: storage.Bucket, **fields: Any) -> DrillReport:
    report = DrillReport(
        namespace=NAMESPACE,
        name=NAME,
        dag_id=SHARED_DRILL_DAG_ID,
        run_id="vmdrill__shop__db__scheduled-20261206T040000Z",
        source_instance="db-1",
        zone="us-central1-a",
        drill_instance="vmdrill-0123456789",
        snapshot_run="r1a2b3",
        snapshots=["db-1-r1a2b3", "db-1-data-r1a2b3"],
        finished_at=datetime(2026, 12, 6, 4, 3, tzinfo=UTC),
        **fields,
    )
    put_report(bucket, drill_report_object_name(NAMESPACE, NAME), report)
    return report


async def test_a_policy_with_verification_gets_no_drill_dag_of_its_own(kube, operator, gcs_bucket) -> None:
    async with operator():
        await create_policy(kube, NAME, SPEC)
        next_drill = await eventually(lambda: status_of(kube, NAME).get("verification", {}).get("nextDrill"))
    assert gcs_bucket.get_blob(DRILL_OBJECT) is None
    assert gcs_bucket.get_blob(SHARED_DRILL_OBJECT).download_as_text() == shared_drill_dag_source()
    assert next_drill.endswith("T04:00:00Z")  # Sundays at 04:00 in the policy's time zone (UTC)
    assert datetime.fromisoformat(next_drill.replace("Z", "+00:00")).weekday() == 6


async def test_a_policy_without_verification_has_no_drill_status(kube, operator, gcs_bucket) -> None:
    spec = {k: v for k, v in SPEC.items() if k != "verification"}
    async with operator():
        await create_policy(kube, NAME, spec)
        await eventually(lambda: status_of(kube, NAME).get("dagHash"))
    assert gcs_bucket.get_blob(DRILL_OBJECT) is None
    assert "verification" not in status_of(kube, NAME)


async def test_a_successful_drill_verifies_the_run(kube, operator, gcs_bucket) -> None:
    write_report(gcs_bucket, result="Succeeded", boot_seconds=42.5, message="run r1a2b3 restored")
    async with operator() as controller:
        await create_policy(kube, NAME, SPEC)
        verified = await eventually(lambda: condition(kube, NAME, RESTORE_VERIFIED))
        verification = await eventually(
            lambda: status_of(kube, NAME)["verification"].get("nextDrill") and status_of(kube, NAME)["verification"]
        )
        # The metrics are waited for themselves, never read the instant the status appeared.
        metric = await eventually(
            lambda: controller.metrics.value(
                "vmbackup_restore_drills_total", {"namespace": NAMESPACE, "name": NAME, "result": "Succeeded"}
            )
        )
        last = await eventually(
            lambda: controller.metrics.value(
                "vmbackup_restore_drill_last_success_timestamp_seconds", {"namespace": NAMESPACE, "name": NAME}
            )
        )
        # kopf posts Events in the background and drops what it has not posted when it stops: waited for here.
        await eventually(lambda: any(e["reason"] == "RestoreVerified" for e in events_for(kube, NAME)))
    assert (verified["status"], verified["reason"]) == ("True", "DrillSucceeded")
    assert verification == {
        "lastVerifiedRun": "r1a2b3",
        "snapshots": ["db-1-r1a2b3", "db-1-data-r1a2b3"],
        "time": "2026-12-06T04:03:00Z",
        "bootSeconds": 42.5,
        "result": "Succeeded",
        "message": "run r1a2b3 restored",
        "nextDrill": verification["nextDrill"],  # the controller's own field (test_a_policy_with_verification_...)
    }
    assert metric == 1
    assert last == datetime(2026, 12, 6, 4, 3, tzinfo=UTC).timestamp()


async def test_a_drill_whose_guest_check_timed_out_sets_the_condition_false(kube, operator, gcs_bucket) -> None:
    message = "serial port 1 did not match 'login: $' within 600 s: Sensor has timed out"
    write_report(gcs_bucket, result="Failed", failed_step="guest_check", boot_seconds=40.0, message=message)
    async with operator() as controller:
        await create_policy(kube, NAME, SPEC)
        verified = await eventually(lambda: condition(kube, NAME, RESTORE_VERIFIED))
        verification = status_of(kube, NAME)["verification"]
        failed = await eventually(
            lambda: controller.metrics.value(
                "vmbackup_restore_drills_total", {"namespace": NAMESPACE, "name": NAME, "result": "Failed"}
            )
        )
        await eventually(lambda: any(e["reason"] == "RestoreDrillFailed" for e in events_for(kube, NAME)))
    assert (verified["status"], verified["reason"]) == ("False", "GuestCheckFailed")
    assert verified["message"] == message
    assert verification["result"] == "Failed"
    assert "lastVerifiedRun" not in verification  # nothing has been verified yet
    assert failed == 1
