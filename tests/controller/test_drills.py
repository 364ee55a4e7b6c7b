"""Restore drills in the controller, with kmock for the Kubernetes API and the GCS emulator for the bucket: the
drill DAG follows spec.verification, and the drill report the drill DAG writes becomes status.verification, the
RestoreVerified condition, an Event and the drill metrics."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import kmock
import pytest
from google.cloud import storage

from controller.app import build_controller
from controller.conditions import RESTORE_VERIFIED, find_condition
from controller.config import ControllerConfig
from controller.handlers import build_registry
from controller.reconciler import Controller
from tests.fixtures.gcs import free_port
from tests.fixtures.kube import events_for, eventually, policy_object, policy_url, running_operator, stored
from vmbackup.model.drill import DrillReport, drill_dag_id_for, drill_report_object_name

NAMESPACE = "shop"
NAME = "db"
VERIFICATION = {"schedule": "0 4 * * 0", "network": "drills", "guestCheck": {"serialPortRegex": "login: $"}}
SPEC: dict[str, Any] = {
    "project": "shop-prod-1",
    "instances": [{"name": "db-1", "zone": "us-central1-a"}],
    "verification": VERIFICATION,
}
TENANCY = {"namespaces": {"shop": {"projects": ["shop-prod-1"]}}}
DRILL_OBJECT = f"dags/{drill_dag_id_for(NAMESPACE, NAME)}.py"

pytestmark = pytest.mark.usefixtures("kubeconfig")


@pytest.fixture
def operator(gcs_bucket: storage.Bucket, gcs_client: storage.Client) -> Callable[[], AbstractAsyncContextManager[Any]]:
    config = ControllerConfig(
        bucket=gcs_bucket.name,
        airflow_url=f"http://127.0.0.1:{free_port()}",  # nothing listens: drills are read from the bucket
        airflow_auth=ControllerConfig().airflow_auth.__class__(mode="none"),
        poll_interval_seconds=0.5,
        metrics_port=0,
        liveness_endpoint=None,
        tenancy_text=json.dumps(TENANCY),
    )

    @asynccontextmanager
    async def start() -> AsyncIterator[Controller]:
        controller = build_controller(config, storage_client=gcs_client)
        async with running_operator(build_registry(controller)):
            yield controller

    return start


async def create_policy(kube: kmock.KubernetesEmulator, spec: dict[str, Any]) -> None:
    async with kube.post(policy_url(NAMESPACE), json=policy_object(NAMESPACE, NAME, spec)) as response:
        assert response.status in (200, 201), await response.text()


def write_report(bucket: storage.Bucket, **fields: Any) -> DrillReport:
    report = DrillReport(
        namespace=NAMESPACE,
        name=NAME,
        dag_id=drill_dag_id_for(NAMESPACE, NAME),
        run_id="scheduled__2026-12-06T04:00:00+00:00",
        source_instance="db-1",
        zone="us-central1-a",
        drill_instance="vmdrill-0123456789",
        snapshot_run="r1a2b3",
        snapshots=["db-1-r1a2b3", "db-1-data-r1a2b3"],
        finished_at=datetime(2026, 12, 6, 4, 3, tzinfo=UTC),
        **fields,
    )
    blob = bucket.blob(drill_report_object_name(NAMESPACE, NAME))
    blob.upload_from_string(report.model_dump_json(by_alias=True), content_type="application/json")
    return report


def verified(kube: kmock.KubernetesEmulator) -> dict[str, Any]:
    found = find_condition((stored(kube, NAMESPACE, NAME).get("status") or {}).get("conditions"), RESTORE_VERIFIED)
    assert found is not None, "no RestoreVerified condition yet"
    return dict(found)


async def test_a_policy_with_verification_gets_its_drill_dag(kube, operator, gcs_bucket) -> None:
    async with operator():
        await create_policy(kube, SPEC)
        await eventually(lambda: gcs_bucket.get_blob(DRILL_OBJECT) is not None)
    source = gcs_bucket.get_blob(DRILL_OBJECT).download_as_text()
    assert "build_drill_dag(POLICY_JSON)" in source


async def test_a_policy_without_verification_has_no_drill_dag(kube, operator, gcs_bucket) -> None:
    spec = {k: v for k, v in SPEC.items() if k != "verification"}
    async with operator():
        await create_policy(kube, spec)
        await eventually(lambda: (stored(kube, NAMESPACE, NAME).get("status") or {}).get("dagHash"))
    assert gcs_bucket.get_blob(DRILL_OBJECT) is None


async def test_a_successful_drill_verifies_the_run(kube, operator, gcs_bucket) -> None:
    write_report(gcs_bucket, result="Succeeded", boot_seconds=42.5, message="run r1a2b3 restored")
    async with operator() as controller:
        await create_policy(kube, SPEC)
        condition = await eventually(lambda: verified(kube))
        verification = stored(kube, NAMESPACE, NAME)["status"]["verification"]
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
    assert (condition["status"], condition["reason"]) == ("True", "DrillSucceeded")
    assert verification == {
        "lastVerifiedRun": "r1a2b3",
        "snapshots": ["db-1-r1a2b3", "db-1-data-r1a2b3"],
        "time": "2026-12-06T04:03:00Z",
        "bootSeconds": 42.5,
        "result": "Succeeded",
        "message": "run r1a2b3 restored",
    }
    assert metric == 1
    assert last == datetime(2026, 12, 6, 4, 3, tzinfo=UTC).timestamp()
    assert any(e["reason"] == "RestoreVerified" for e in events_for(kube, NAME))


async def test_a_drill_whose_guest_check_timed_out_sets_the_condition_false(kube, operator, gcs_bucket) -> None:
    message = "serial port 1 did not match 'login: $' within 600 s: Sensor has timed out"
    write_report(gcs_bucket, result="Failed", failed_step="guest_check", boot_seconds=40.0, message=message)
    async with operator() as controller:
        await create_policy(kube, SPEC)
        condition = await eventually(lambda: verified(kube))
        verification = stored(kube, NAMESPACE, NAME)["status"]["verification"]
        failed = await eventually(
            lambda: controller.metrics.value(
                "vmbackup_restore_drills_total", {"namespace": NAMESPACE, "name": NAME, "result": "Failed"}
            )
        )
    assert (condition["status"], condition["reason"]) == ("False", "GuestCheckFailed")
    assert condition["message"] == message
    assert verification["result"] == "Failed"
    assert "lastVerifiedRun" not in verification  # nothing has been verified yet
    assert failed == 1
    assert any(e["reason"] == "RestoreDrillFailed" for e in events_for(kube, NAME))
