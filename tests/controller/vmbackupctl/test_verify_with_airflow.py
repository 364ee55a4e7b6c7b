"""``vmbackupctl verify POLICY --wait`` end to end: the CLI (no Airflow flags or credentials), the controller, a real
Airflow 3, kmock and the mirrored bucket. The CLI annotates the policy; the controller starts the drill as a run of
the shared drill DAG and removes the annotation; the test then does what the drill's last task does (the drill
report in the bucket; the drill itself runs in tests/plugins/vmbackup/drill/) and ends the run; the controller
fills status.verification from the report, and the CLI exits with the drill's result.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import kmock
from google.cloud import storage

from controller.airflow_api import AirflowClient
from tests.controller.conftest import NAMESPACE, Starter, create_policy, put_report, status_of
from tests.controller.test_drill_runs_with_airflow import (
    AIRFLOW_WAIT,
    SPEC,
    airflow,
    config,
    drills_of,
    end_run,
    name,
)
from tests.controller.vmbackupctl.test_commands import vmbackupctl
from tests.fixtures.kube import eventually
from vmbackup.model.drill import SHARED_DRILL_DAG_ID, DrillReport, drill_report_object_name

__all__ = ["airflow", "config", "name"]


async def verify_while_drilling(
    kube: kmock.KubernetesEmulator,
    operator: Starter,
    client: AirflowClient,
    bucket: storage.Bucket,
    policy: str,
    **report: Any,
) -> tuple[Any, str]:
    """`verify POLICY --wait` while the controller runs; the drill it starts ends with `report`."""
    async with operator():
        await create_policy(kube, policy, SPEC)
        await eventually(lambda: status_of(kube, policy).get("verification", {}).get("nextDrill"), within=AIRFLOW_WAIT)
        cli = asyncio.create_task(vmbackupctl("verify", policy, "-n", NAMESPACE, "--wait", "--timeout", "240"))
        (run_id,) = await eventually(lambda: drills_of(client, policy), within=AIRFLOW_WAIT)
        drill = DrillReport(
            namespace=NAMESPACE,
            name=policy,
            dag_id=SHARED_DRILL_DAG_ID,
            run_id=run_id,
            finished_at=datetime.now(UTC),
            **report,
        )
        put_report(bucket, drill_report_object_name(NAMESPACE, policy), drill)
        await end_run(client, SHARED_DRILL_DAG_ID, run_id, "success" if report["result"] == "Succeeded" else "failed")
        return await cli, run_id


async def test_verify_wait_starts_a_drill_through_the_controller_and_exits_0_when_it_verified(
    kube: kmock.KubernetesEmulator,
    kubeconfig: Any,
    operator: Starter,
    airflow: AirflowClient,
    gcs_bucket: storage.Bucket,
    name: str,
) -> None:
    result, run_id = await verify_while_drilling(
        kube,
        operator,
        airflow,
        gcs_bucket,
        name,
        result="Succeeded",
        snapshot_run="r0123456789a",
        boot_seconds=31.4,
        message="guest ok",
    )

    assert result.code == 0, result.stderr
    assert f"{NAMESPACE}/{name}: verified run r0123456789a, RUNNING after 31.4 s: guest ok" in result.stdout
    assert status_of(kube, name)["verification"]["startedRun"] == run_id


async def test_verify_wait_exits_1_when_the_drill_failed(
    kube: kmock.KubernetesEmulator,
    kubeconfig: Any,
    operator: Starter,
    airflow: AirflowClient,
    gcs_bucket: storage.Bucket,
    name: str,
) -> None:
    result, _ = await verify_while_drilling(
        kube, operator, airflow, gcs_bucket, name, result="Failed", failed_step="guest_check", message="timed out"
    )

    assert result.code == 1
    assert f"{NAMESPACE}/{name}: restore drill failed: timed out" in result.stdout
