"""spec.rpo through the whole status pipeline: the controller, kmock and a real Airflow 3.

Runs are triggered on demand on a suspended policy (so they never call Compute Engine) and finished the way the
DAG finishes them: the report in the bucket, then Airflow's run state. The policy was created three days ago, so
with no good backup its 26 h objective is already breached; a good run meets it again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import kmock
import pytest
from google.cloud import storage

from controller.airflow_api import AirflowClient
from controller.conditions import RPO_MET
from controller.metrics import RPO_BREACHED
from controller.reconciler import BACKUP_NOW_ANNOTATION
from tests.controller.conftest import (
    NAMESPACE,
    condition,
    create_policy,
    end_run,
    patch_policy,
    put_report,
    status_of,
)
from tests.controller.test_operator_with_airflow import AIRFLOW_WAIT, SPEC, config, manual_run, name
from tests.fixtures.kube import eventually
from vmbackup.model.policy import dag_id_for
from vmbackup.model.report import DiskResult, InstanceResult, RunReport, latest_report_object_name

__all__ = ["config", "name"]  # fixtures, used by name

pytestmark = pytest.mark.usefixtures("kubeconfig")
THREE_DAYS_AGO = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_report(name: str, run_id: str, disk_state: str) -> RunReport:
    """web-1 with one disk, its snapshot READY (a good backup) or FAILED (none)."""
    started = datetime.now(UTC) - timedelta(minutes=2)
    disk = DiskResult(disk="web-1", zone="us-central1-a", snapshot="web-1-s", state=disk_state)  # type: ignore[arg-type]
    error = None if disk_state == "READY" else "the snapshot of web-1 failed"
    return RunReport(
        namespace=NAMESPACE,
        name=name,
        dag_id=dag_id_for(NAMESPACE, name),
        run_id=run_id,
        consistency="none",
        result="succeeded" if error is None else "failed",
        started_at=started,
        finished_at=started + timedelta(minutes=1),
        instances=[InstanceResult(instance="web-1", zone="us-central1-a", disks=[disk], error=error)],
    )


async def finish(airflow: AirflowClient, bucket: storage.Bucket, name: str, after: str | None, disk_state: str) -> str:
    """Wait for the on-demand run after ``after``, then finish it as the DAG would, with its report first."""
    dag_id = dag_id_for(NAMESPACE, name)

    async def new_run() -> Any:
        run = await manual_run(airflow, dag_id)
        return run if run is not None and run.run_id != after else None

    run_id = str((await eventually(new_run, within=AIRFLOW_WAIT, what="an on-demand run")).run_id)
    put_report(bucket, latest_report_object_name(NAMESPACE, name), run_report(name, run_id, disk_state))
    state = "success" if disk_state == "READY" else "failed"
    await end_run(airflow, dag_id, run_id, state)
    return run_id


async def test_failing_runs_breach_the_rpo_and_a_good_run_meets_it_again(
    kube: kmock.KubernetesEmulator, operator: Any, airflow: AirflowClient, gcs_bucket: storage.Bucket, name: str
) -> None:
    spec = {**SPEC, "rpo": "26h", "suspend": True}
    web_1 = {"namespace": NAMESPACE, "name": name, "instance": "web-1", "zone": "us-central1-a"}
    async with operator() as controller:
        await create_policy(
            kube, name, spec, creationTimestamp=THREE_DAYS_AGO, annotations={BACKUP_NOW_ANNOTATION: "1"}
        )
        failed = await finish(airflow, gcs_bucket, name, None, "FAILED")
        await eventually(lambda: condition(kube, name, "LastBackupSucceeded")["status"] == "False", within=AIRFLOW_WAIT)
        assert status_of(kube, name)["recoveryPoint"]["compliance"] == "Breached"
        assert condition(kube, name, RPO_MET)["reason"] == "Breached"
        assert controller.metrics.value(RPO_BREACHED, web_1) == 1

        await patch_policy(kube, name, {"metadata": {"annotations": {BACKUP_NOW_ANNOTATION: "2"}}})
        good = await finish(airflow, gcs_bucket, name, failed, "READY")
        await eventually(lambda: condition(kube, name, RPO_MET)["status"] == "True", within=AIRFLOW_WAIT)
        point = status_of(kube, name)["recoveryPoint"]
        assert point["compliance"] == "Met"
        assert point["instances"][0]["run"] == good
        assert controller.metrics.value(RPO_BREACHED, web_1) == 0
