"""What a finished run's report turns into on /metrics, with the controller, kmock and a real Airflow 3.

The run is triggered on demand on a suspended policy (so it never calls Compute Engine) and finished
the way the DAG finishes it: its report in the bucket, then Airflow's run state.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import kmock
import pytest
from google.cloud import storage

from controller.airflow_api import AirflowClient
from controller.reconciler import BACKUP_NOW_ANNOTATION
from tests.controller.conftest import NAMESPACE, create_policy, end_run, put_report, series_of
from tests.controller.test_operator_with_airflow import (  # its controller-with-Airflow configuration
    AIRFLOW_WAIT,
    SPEC,
    config,
    manual_run,
    name,
)
from tests.fixtures.kube import POLICIES, eventually, policy_url
from vmbackup.model.policy import dag_id_for
from vmbackup.model.report import DiskResult, InstanceResult, RunReport, latest_report_object_name

__all__ = ["config", "name"]  # fixtures, used by name (operator, mirrored and airflow are conftest's)

pytestmark = pytest.mark.usefixtures("kubeconfig")


def finished_report(name: str, run_id: str) -> RunReport:
    """Two VMs: web-1 stopped for 42 s (two disks), web-2 left running (consistency none for it); one pruned."""
    start = datetime.now(UTC) - timedelta(minutes=3)
    web_1 = InstanceResult(
        instance="web-1",
        zone="us-central1-a",
        stopped_at=start + timedelta(seconds=5),
        started_at=start + timedelta(seconds=47),
        downtime_seconds=42.0,
        disks=[
            DiskResult(disk=disk, zone="us-central1-a", snapshot=f"{disk}-20261125-0200-3f9a1c2b", state="READY")
            for disk in ("web-1-boot", "web-1-data")
        ],
    )
    web_2 = InstanceResult(
        instance="web-2",
        zone="us-central1-b",
        disks=[DiskResult(disk="web-2-boot", zone="us-central1-b", snapshot="web-2-boot-20261125", state="READY")],
    )
    return RunReport(
        namespace=NAMESPACE,
        name=name,
        dag_id=dag_id_for(NAMESPACE, name),
        run_id=run_id,
        consistency="stop",
        result="succeeded",
        started_at=start,
        finished_at=start + timedelta(seconds=150),
        instances=[web_1, web_2],
        pruned_snapshots=["web-1-boot-20261118-0200-0a1b2c3d"],
    )


async def finish_run(kube: kmock.KubernetesEmulator, airflow: AirflowClient, bucket: storage.Bucket, name: str) -> str:
    dag_id = dag_id_for(NAMESPACE, name)
    await create_policy(kube, name, {**SPEC, "suspend": True}, annotations={BACKUP_NOW_ANNOTATION: "x"})
    run_id = (await eventually(lambda: manual_run(airflow, dag_id), within=AIRFLOW_WAIT)).run_id
    report = finished_report(name, run_id)
    put_report(bucket, latest_report_object_name(NAMESPACE, name), report)
    await end_run(airflow, dag_id, run_id, "success")
    return run_id


async def test_a_finished_run_exports_downtime_per_vm_duration_and_snapshots(
    kube, operator, airflow, gcs_bucket, name
) -> None:
    policy = {"namespace": NAMESPACE, "name": name}
    async with operator() as controller:
        await finish_run(kube, airflow, gcs_bucket, name)
        await eventually(
            lambda: controller.metrics.value("vmbackup_snapshots_created_total", policy) > 0, within=AIRFLOW_WAIT
        )
        value = controller.metrics.value

        downtime = {
            vm: value("vmbackup_vm_downtime_seconds", {**policy, "instance": vm, "zone": zone})
            for vm, zone in (("web-1", "us-central1-a"), ("web-2", "us-central1-b"))
        }
        created = value("vmbackup_snapshots_created_total", policy)
        pruned = value("vmbackup_snapshots_pruned_total", policy)
        duration = value("vmbackup_last_run_duration_seconds", policy)
        reachable = value("vmbackup_airflow_reachable", policy)

    assert downtime == {"web-1": 42.0, "web-2": 0.0}
    assert (created, pruned) == (3, 1)
    assert duration > 0
    assert reachable == 1


async def test_deleting_the_policy_removes_its_series(kube, operator, airflow, gcs_bucket, name) -> None:
    async with operator() as controller:
        await finish_run(kube, airflow, gcs_bucket, name)
        policy = {"namespace": NAMESPACE, "name": name}
        await eventually(
            lambda: controller.metrics.value("vmbackup_snapshots_created_total", policy) > 0, within=AIRFLOW_WAIT
        )

        async with kube.delete(policy_url(NAMESPACE, name)):
            pass
        # Read once kopf has let the policy go: its refresh timer has stopped by then (a tick in flight during the
        # deletion has ended), so nothing of the policy can come back later (tests/controller/
        # test_deletion_during_a_poll.py has the order of a deletion and a poll in flight, step by step).
        await eventually(lambda: kube.objects[POLICIES, NAMESPACE, name].deleted, within=AIRFLOW_WAIT)
        left = series_of(controller, name)

    assert left == []
