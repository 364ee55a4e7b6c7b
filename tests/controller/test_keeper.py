"""The keeper on the controller side, end to end: kopf against kmock, the bucket in the Cloud Storage emulator.

The controller ships dags/vmbackup_keeper.py with the projects it must watch and reads the keeper's report
(written here as the keeper DAG writes it) into the VMLeftStopped condition and the left-stopped metrics.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import kmock
import pytest
from google.cloud import storage

from controller.conditions import VM_LEFT_STOPPED
from controller.config import ControllerConfig
from dags_templates.render_keeper import KEEPER_DAG_ID
from tests.controller.conftest import NAMESPACE, condition, create_policy, put_report, status_of
from tests.fixtures.gcs import free_port
from tests.fixtures.kube import eventually, offline_config
from vmbackup.model.keeper_report import KEEPER_REPORT_OBJECT, KeeperReport, LeftStoppedInstance

KEEPER_OBJECT = f"dags/{KEEPER_DAG_ID}.py"
TENANT_BUCKET = "shop-keeper-own-bucket"
SPEC: dict[str, Any] = {
    "project": "shop-prod-1",
    "instances": [{"name": "web-1", "zone": "us-central1-a"}],
    "schedule": "0 2 * * *",
    "retention": {"count": 7},
}
WITHIN = 60  # generous: two cores shared by many test runs

pytestmark = pytest.mark.usefixtures("kubeconfig")


def keeper_config(bucket: storage.Bucket, tenancy: dict[str, Any]) -> ControllerConfig:
    return dataclasses.replace(offline_config(bucket.name, tenancy), keeper_read_interval_seconds=0.5)


def keeper_projects(bucket: storage.Bucket) -> list[str] | None:
    """The projects in the shipped keeper DAG's configuration (read from the file's one string literal)."""
    import ast

    blob = bucket.get_blob(KEEPER_OBJECT)
    if blob is None:
        return None
    tree = ast.parse(blob.download_as_text())
    (value,) = [
        ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name) and n.targets[0].id == "CONFIG"
    ]
    return list(json.loads(value)["projects"])


def write_report(bucket: storage.Bucket, report: KeeperReport) -> None:
    put_report(bucket, KEEPER_REPORT_OBJECT, report)


def left_stopped(**extra: Any) -> LeftStoppedInstance:
    values: dict[str, Any] = {
        "project": "shop-prod-1",
        "zone": "us-central1-a",
        "instance": "web-1",
        "stopped_by": "run-1a2b",
        "stopped_at": datetime(2026, 12, 7, 5, 0, tzinfo=UTC),
        "status": "TERMINATED",
        "attempts": 4,
        "last_error": "ZONE_RESOURCE_POOL_EXHAUSTED: the zone does not have enough resources",
    }
    return LeftStoppedInstance(**{**values, **extra})


def report(written_at: datetime | None = None, **lists: list[LeftStoppedInstance]) -> KeeperReport:
    return KeeperReport(written_at=written_at or datetime.now(UTC), projects=["shop-prod-1"], **lists)


def left_stopped_condition(kube: kmock.KubernetesEmulator, name: str = "web") -> dict[str, Any]:
    return condition(kube, name, VM_LEFT_STOPPED)


async def test_the_keeper_dag_lands_in_the_bucket_with_the_granted_projects(kube, start_controller, gcs_bucket) -> None:
    tenancy = {"namespaces": {NAMESPACE: {"projects": ["shop-prod-1", "shop-dev"]}, "ops": {"projects": ["ops-1"]}}}
    async with start_controller(keeper_config(gcs_bucket, tenancy)) as controller:
        projects = await eventually(lambda: keeper_projects(gcs_bucket), within=WITHIN, what="keeper DAG uploaded")
        await eventually(lambda: controller.metrics.value("vmbackup_uploads_total", {"kind": "keeper"}) == 1)

    assert projects == ["ops-1", "shop-dev", "shop-prod-1"]


async def test_the_keeper_dag_is_rendered_again_when_a_policy_names_a_new_project(
    kube, start_controller, gcs_bucket
) -> None:
    async with start_controller(keeper_config(gcs_bucket, {"allowAllProjects": True})):
        await create_policy(kube, "web", SPEC)
        await eventually(lambda: keeper_projects(gcs_bucket) == ["shop-prod-1"], within=WITHIN)

        await create_policy(kube, "db", {**SPEC, "project": "shop-prod-2"})

        await eventually(lambda: keeper_projects(gcs_bucket) == ["shop-prod-1", "shop-prod-2"], within=WITHIN)


@pytest.fixture
def tenant_bucket(gcs_client: storage.Client) -> storage.Bucket:
    """A bucket granted to one namespace only (its own Airflow)."""
    bucket = gcs_client.bucket(TENANT_BUCKET)
    if not bucket.exists():
        return gcs_client.create_bucket(TENANT_BUCKET)
    for blob in gcs_client.list_blobs(TENANT_BUCKET):
        blob.delete()
    return bucket


async def test_a_bucket_granted_to_one_namespace_gets_only_its_policies_projects(
    kube, start_controller, gcs_bucket, tenant_bucket
) -> None:
    own_airflow = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    tenancy = {
        "namespaces": {
            NAMESPACE: {
                "projects": ["shop-prod-1"],
                "composerTargets": [{"bucket": TENANT_BUCKET, "airflowUri": own_airflow}],
            },
            "finance": {"projects": ["finance-prod"]},
        }
    }
    async with start_controller(keeper_config(gcs_bucket, tenancy)):
        await create_policy(kube, "web", {**SPEC, "composer": {"bucket": TENANT_BUCKET, "airflowUri": own_airflow}})

        own = await eventually(lambda: keeper_projects(tenant_bucket), within=WITHIN, what="keeper DAG in own bucket")
        default = await eventually(lambda: keeper_projects(gcs_bucket), within=WITHIN)
    assert own == ["shop-prod-1"]
    assert default == ["finance-prod", "shop-prod-1"]


async def test_a_vm_left_stopped_sets_the_condition_and_the_gauge_until_it_is_started(
    kube, start_controller, gcs_bucket
) -> None:
    tenancy = {"namespaces": {NAMESPACE: {"projects": ["shop-prod-1"]}}}
    write_report(gcs_bucket, report(left_stopped=[left_stopped()]))
    async with start_controller(keeper_config(gcs_bucket, tenancy)) as controller:
        await create_policy(kube, "web", SPEC)

        waiting = await eventually(
            lambda: left_stopped_condition(kube).get("status") == "True" and left_stopped_condition(kube), within=WITHIN
        )
        await eventually(lambda: controller.metrics.value("vmbackup_vms_left_stopped", {"project": "shop-prod-1"}) == 1)
        assert "web-1" in waiting["message"]
        assert "2026-12-07T05:00:00Z" in waiting["message"]
        assert "4 start attempt(s)" in waiting["message"]
        assert "ZONE_RESOURCE_POOL_EXHAUSTED" in waiting["message"]

        write_report(gcs_bucket, report(started=[left_stopped(status="RUNNING")]))

        cleared = await eventually(
            lambda: left_stopped_condition(kube).get("status") == "False" and left_stopped_condition(kube),
            within=WITHIN,
        )
        await eventually(lambda: controller.metrics.value("vmbackup_vms_left_stopped", {"project": "shop-prod-1"}) == 0)
    assert cleared["reason"] == "StartedAgain"
    assert "web-1" in cleared["message"]


async def test_the_mark_names_the_owning_policy_of_a_vm_it_does_not_list(kube, start_controller, gcs_bucket) -> None:
    tenancy = {"namespaces": {NAMESPACE: {"projects": ["shop-prod-1"]}}}
    elsewhere = left_stopped(instance="batch-7", zone="us-central1-b", namespace=NAMESPACE, policy="web")
    write_report(gcs_bucket, report(left_stopped=[elsewhere]))
    async with start_controller(keeper_config(gcs_bucket, tenancy)):
        await create_policy(kube, "web", SPEC)

        waiting = await eventually(
            lambda: left_stopped_condition(kube).get("status") == "True" and left_stopped_condition(kube), within=WITHIN
        )
    assert "batch-7" in waiting["message"]


async def test_a_stale_keeper_report_is_surfaced(kube, start_controller, gcs_bucket) -> None:
    tenancy = {"namespaces": {NAMESPACE: {"projects": ["shop-prod-1"]}}}
    write_report(gcs_bucket, report(written_at=datetime.now(UTC) - timedelta(hours=2)))
    async with start_controller(keeper_config(gcs_bucket, tenancy)) as controller:
        await create_policy(kube, "web", SPEC)

        stale = await eventually(
            lambda: left_stopped_condition(kube).get("status") == "Unknown" and left_stopped_condition(kube),
            within=WITHIN,
        )
        age = controller.metrics.value("vmbackup_keeper_report_age_seconds", {"bucket": gcs_bucket.name})
        interval = controller.metrics.value("vmbackup_keeper_interval_seconds", {"bucket": gcs_bucket.name})
    assert stale["reason"] == "KeeperReportStale"
    assert age >= 7200
    assert interval == 600


async def test_before_the_first_report_the_age_counts_from_the_keeper_dag_and_no_condition_is_set(
    kube, start_controller, gcs_bucket
) -> None:
    tenancy = {"namespaces": {NAMESPACE: {"projects": ["shop-prod-1"]}}}
    async with start_controller(keeper_config(gcs_bucket, tenancy)) as controller:
        await create_policy(kube, "web", SPEC)
        await eventually(lambda: status_of(kube, "web").get("dagHash"), within=WITHIN)

        await eventually(
            lambda: controller.metrics.value("vmbackup_keeper_report_age_seconds", {"bucket": gcs_bucket.name}) >= 1,
            within=WITHIN,
        )
        assert left_stopped_condition(kube) == {}
