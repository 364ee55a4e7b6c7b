"""VMRestores with a real Airflow 3: the controller ships the shared restore DAGs with the plugins, Airflow parses
them from the mirrored bucket, the controller triggers each restore's one run with its signed conf, and the status
follows the run and the restore report it writes. A restore an earlier version started in a DAG file of its own
is followed to its end, and its file kept until then.

What the runs' tasks do to Compute Engine is covered by tests/plugins/vmbackup/restore/; here the report is written
as the DAG writes it, and the run is marked finished through Airflow's API, so the test depends on no cloud.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import kmock
import kopf
import pytest
from google.cloud import storage

from controller.airflow_api import AirflowClient
from controller.airflow_link import AirflowControl
from controller.conditions import RESTORE_RUN_STARTED, RESTORE_WAITING, find_condition
from controller.config import ControllerConfig
from controller.handlers import configure_settings
from controller.restore_handlers import run_id_for
from dags_templates.render_restore import render_restore_dag
from devstack.bucket_mirror import BucketMirror
from tests.controller.conftest import (
    NAMESPACE,
    Starter,
    airflow3_config,
    create_policy,
    create_restore,
    end_run,
    put_report,
    restore_object,
    restore_status,
    restore_url,
    retried,
)
from tests.fixtures.airflow_api import RUN_SIGNING_KEY, AirflowServer
from tests.fixtures.kube import RESTORES, events_for, eventually
from vmbackup.model.policy import parse_policy
from vmbackup.model.report import RestoreReport, restore_report_object_name
from vmbackup.model.restore import SHARED_RESTORE_DAG_ID, parse_restore, restore_dag_id_for
from vmbackup.model.run_signature import verify_run_conf

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
    # The test Airflow's workers check runs with RUN_SIGNING_KEY.
    return airflow3_config(gcs_bucket, airflow3_api, run_signing_key=RUN_SIGNING_KEY)


async def create_both(kube: kmock.KubernetesEmulator, policy: str, restore: str) -> None:
    await create_policy(kube, policy, POLICY_SPEC)
    await create_restore(kube, restore, {"policyName": policy})


async def runs_of(airflow: AirflowClient, dag_id: str, run_id: str) -> list[str]:
    """The runs of the DAG with this id (the shared DAG has other tests' runs too)."""
    path = f"/api/v2/dags/{dag_id}/dagRuns"
    data = await retried(lambda: airflow.raw_request("GET", path, params={"limit": 100}), f"the runs of {dag_id}")
    return [run["dag_run_id"] for run in data["dag_runs"] if run["dag_run_id"] == run_id]


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


AFTER_RESTART = "vmbackup-test/after-restart"  # a label a test sets on a restore; no handler reads it


def label_handled(kube: kmock.KubernetesEmulator, name: str, label: str) -> bool:
    """kopf has handled the restore as it is with `label`: it handles one object's changes one at a time and stores
    what it last handled (its diff base) only once every handler of that change is done."""
    settings = kopf.OperatorSettings()
    configure_settings(settings)  # the controller's own, where it keeps that
    body = kopf.Body(kube.objects[RESTORES, NAMESPACE, name].raw)
    handled = settings.persistence.diffbase_storage.fetch(body=body) or {}
    return label in ((handled.get("metadata") or {}).get("labels") or {})


async def test_a_restore_triggers_exactly_one_run_even_across_restarts(
    kube: kmock.KubernetesEmulator, operator: Starter, airflow: AirflowClient, names: tuple[str, str]
) -> None:
    policy, restore = names
    dag_id = SHARED_RESTORE_DAG_ID

    def posted(reason: str) -> list[dict[str, Any]]:
        return [e for e in events_for(kube, restore) if e["reason"] == reason]

    async with operator():
        await create_both(kube, policy, restore)
        run_id = await eventually(lambda: restore_status(kube, restore).get("runId"), within=AIRFLOW_WAIT)
        await eventually(lambda: posted("RestoreTriggered"))  # in the background; dropped if kopf stops first
    async with operator():
        # A change made after the restart: once it is handled, so is the restarted controller's resume.
        async with kube.patch(restore_url(restore), json={"metadata": {"labels": {AFTER_RESTART: "1"}}}) as response:
            assert response.status == 200, await response.text()
        await eventually(lambda: label_handled(kube, restore, AFTER_RESTART))
        runs = await runs_of(airflow, dag_id, run_id)
        await end_run(airflow, dag_id, run_id, "failed")
        # kopf posts one object's Events in order: this one comes after any the resume queued.
        await eventually(lambda: posted("RestoreFailed"), within=AIRFLOW_WAIT)

    assert run_id == run_id_for(f"uid-{restore}")
    assert runs == [run_id]
    assert len(posted("RestoreTriggered")) == 1


async def test_the_status_follows_the_restore_report(
    kube: kmock.KubernetesEmulator,
    operator: Starter,
    airflow: AirflowClient,
    gcs_bucket: storage.Bucket,
    names: tuple[str, str],
) -> None:
    policy, restore = names
    dag_id = SHARED_RESTORE_DAG_ID
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
        await end_run(airflow, dag_id, run_id, "success")
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
    assert "waitingFor" not in status
    waiting = find_condition(status["conditions"], RESTORE_WAITING)
    assert waiting is not None
    assert waiting["status"] == "False"


async def test_a_run_that_fails_without_a_report_fails_the_restore(
    kube: kmock.KubernetesEmulator, operator: Starter, airflow: AirflowClient, names: tuple[str, str]
) -> None:
    policy, restore = names
    async with operator():
        await create_both(kube, policy, restore)
        run_id = await eventually(lambda: restore_status(kube, restore).get("runId"), within=AIRFLOW_WAIT)

        await end_run(airflow, SHARED_RESTORE_DAG_ID, run_id, "failed")
        status = await eventually(
            lambda: restore_status(kube, restore).get("phase") == "Failed" and restore_status(kube, restore)
        )

    assert f"restore run {run_id} failed before reporting" in status["message"]


def deletion_retried(kube: kmock.KubernetesEmulator, name: str) -> bool:
    """kopf's progress record says the deletion handler ran and was told to try again later."""
    annotations = kube.objects[RESTORES, NAMESPACE, name].raw["metadata"].get("annotations") or {}
    progress = [json.loads(v) for k, v in annotations.items() if k.endswith("remove-restore-dag")]
    return any(p.get("retries", 0) >= 1 and not p.get("success") for p in progress)


async def test_a_started_restore_runs_with_its_signed_conf_and_says_what_it_waits_for(
    kube: kmock.KubernetesEmulator, operator: Starter, airflow: AirflowClient, names: tuple[str, str]
) -> None:
    policy, restore = names
    async with operator():
        await create_both(kube, policy, restore)
        run_id = await eventually(lambda: restore_status(kube, restore).get("runId"), within=AIRFLOW_WAIT)
        status = await eventually(
            lambda: restore_status(kube, restore).get("waitingFor") and restore_status(kube, restore)
        )
        conf = (await retried(lambda: airflow.get_run(SHARED_RESTORE_DAG_ID, run_id), f"run {run_id}")).conf
        await end_run(airflow, SHARED_RESTORE_DAG_ID, run_id, "failed")

    payload = verify_run_conf(
        RUN_SIGNING_KEY.encode(), conf, dag_id=SHARED_RESTORE_DAG_ID, run_id=run_id, now=datetime.now(UTC).timestamp()
    )
    assert json.loads(payload)["name"] == restore
    assert status["dagId"] == SHARED_RESTORE_DAG_ID
    assert status["waitingSince"]
    started = find_condition(status["conditions"], RESTORE_RUN_STARTED)
    assert started is not None
    assert started["status"] == "True"


async def start_as_an_earlier_version_did(
    kube: kmock.KubernetesEmulator, airflow: AirflowClient, bucket: storage.Bucket, policy: str, restore: str
) -> str:
    """A VMRestore in flight as a controller before the shared DAGs left it: a DAG file of its own (importing the
    plugins the running controller ships for the policy), its run triggered, status.dagId and status.runId set."""
    parsed = parse_restore(NAMESPACE, restore, {"policyName": policy}, parse_policy(NAMESPACE, policy, POLICY_SPEC))
    await create_policy(kube, policy, POLICY_SPEC)
    bucket.blob(f"dags/{parsed.dag_id}.py").upload_from_string(render_restore_dag(parsed))
    await eventually(lambda: airflow_knows(airflow, parsed.dag_id), within=AIRFLOW_WAIT, what="legacy DAG parsed")
    run_id = run_id_for(f"uid-{restore}")
    # Each asked again while Airflow cannot answer; an earlier try's run counts (Airflow's 409 for the same id).
    await retried(lambda: airflow.set_paused(parsed.dag_id, False), f"{parsed.dag_id} unpaused")
    await retried(lambda: AirflowControl(airflow).trigger_run(parsed.dag_id, run_id), f"{run_id} started")
    body = restore_object(restore, {"policyName": policy})
    body["status"] = {"phase": "Pending", "dagId": parsed.dag_id, "runId": run_id, "instance": restore}
    async with kube.post(restore_url(), json=body) as response:
        assert response.status in (200, 201), await response.text()
    return run_id


async def airflow_knows(airflow: AirflowClient, dag_id: str) -> bool:
    return any(dag.dag_id == dag_id for dag in await airflow.list_dags(dag_id))


async def test_a_restore_an_earlier_version_started_is_followed_in_its_own_dag_until_it_ends(
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
        run_id = await start_as_an_earlier_version_did(kube, airflow, gcs_bucket, policy, restore)
        write_report(gcs_bucket, restore, run_id, "CreatingDisks")
        followed = await eventually(
            lambda: restore_status(kube, restore).get("phase") == "CreatingDisks" and restore_status(kube, restore)
        )

        async with kube.delete(restore_url(restore)):
            pass
        held = await eventually(lambda: deletion_retried(kube, restore), within=AIRFLOW_WAIT)
        kept = gcs_bucket.get_blob(dag_object) is not None

        await end_run(airflow, dag_id, run_id, "failed")
        await eventually(lambda: kube.objects[RESTORES, NAMESPACE, restore].deleted, within=AIRFLOW_WAIT)

    assert held
    assert kept
    assert gcs_bucket.get_blob(dag_object) is None
    assert followed["dagId"] == dag_id  # never moved to the shared DAG
