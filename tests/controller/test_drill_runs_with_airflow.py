"""Restore drills started by the controller, with a real Airflow 3, kmock and the mirrored bucket: the controller
ships the shared drill DAG with the plugins and triggers each drill as one run of it, its conf the policy signed,
on the policy's drill schedule (once per slot, a duplicate trigger being fine) and on `vmbackupctl verify`'s
annotation; never two drills of one policy at once; and a policy's drill DAG file of an earlier version goes once
its run has ended: while the policy stays, when it moves to another target, and when it is deleted.

What a drill run does to Compute Engine is tests/plugins/vmbackup/drill/'s; here runs are ended through Airflow's
API (a run the controller started is marked failed at the end of each test), so no test depends on a cloud; one
run goes through Airflow's workers, which refuse it (signed with another key than theirs) before any cloud call.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import kmock
import pytest
from google.cloud import storage

from controller.airflow_api import AirflowClient
from controller.airflow_errors import AirflowError
from controller.bucket import dag_object_name
from controller.config import ControllerConfig
from controller.drill_schedule import due_drill_slot
from controller.handlers import FINALIZER
from devstack.bucket_mirror import BucketMirror
from tests.controller.conftest import (
    NAMESPACE,
    ConfiguredStarter,
    Starter,
    airflow3_config,
    condition,
    create_policy,
    end_run,
    patch_policy,
    retried,
    status_of,
)
from tests.fixtures.airflow_api import RUN_SIGNING_KEY, AirflowServer, dag_source
from tests.fixtures.gcs import free_port
from tests.fixtures.kube import POLICIES, events_for, eventually, policy_url, stored
from vmbackup.model.drill import SHARED_DRILL_DAG_ID, drill_dag_id_for, drill_run_prefix, scheduled_drill_run_id
from vmbackup.model.policy import VERIFY_NOW_ANNOTATION, dag_id_for
from vmbackup.model.run_signature import SIGNING_KEY_ENV, verify_run_conf

HOURLY = "0 * * * *"
DAILY = "0 4 * * *"
SPEC: dict[str, Any] = {
    "project": "shop-prod-1",
    "instances": [{"name": "db-1", "zone": "us-central1-a"}],
    "suspend": True,  # the policy's backup DAG stays paused: only drills run
    "verification": {"schedule": "0 4 1 1 *", "network": "drills"},  # next due in January: only on request
}
AIRFLOW_WAIT = 120
REFUSED_RUN_WAIT = 600  # a run whose three tasks the workers refuse: three task starts on a loaded machine
LEGACY_RUN = "manual__drill-of-an-earlier-version"
OTHER_BUCKET = "shop-drills-moved-bucket"  # a target the policy moves to (granted; nothing listens at its Airflow)
OTHER_TARGET = {"bucket": OTHER_BUCKET, "airflowUri": f"http://127.0.0.1:{free_port()}"}

pytestmark = pytest.mark.usefixtures("kubeconfig")


@pytest.fixture
def name() -> str:
    """A fresh policy per test: Airflow's database outlives each test."""
    return f"db-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def config(gcs_bucket: storage.Bucket, airflow3_api: AirflowServer, mirrored: BucketMirror) -> ControllerConfig:
    # The test Airflow's workers check runs with RUN_SIGNING_KEY; OTHER_TARGET: where a policy may move to.
    tenancy = {"namespaces": {NAMESPACE: {"projects": ["shop-prod-1"], "composerTargets": [OTHER_TARGET]}}}
    return airflow3_config(gcs_bucket, airflow3_api, run_signing_key=RUN_SIGNING_KEY, tenancy_text=json.dumps(tenancy))


@pytest.fixture
async def airflow(airflow3_api: AirflowServer, name: str) -> AsyncIterator[AirflowClient]:
    """Airflow's client; at the end, the policy's drills still in flight are failed (no executor slot kept)."""
    async with airflow3_api.client() as client:
        yield client
        for run in await client.active_runs([SHARED_DRILL_DAG_ID, drill_dag_id_for(NAMESPACE, name)]):
            if run.dag_id != SHARED_DRILL_DAG_ID or run.run_id.startswith(drill_run_prefix(NAMESPACE, name)):
                await end_run(client, run.dag_id, run.run_id, "failed")


async def drills_of(airflow: AirflowClient, name: str) -> dict[str, dict[str, Any]]:
    """The policy's runs in the shared drill DAG, by run id (the DAG has other tests' runs too); none while
    Airflow has not parsed the DAG's file yet (404: the controller has only just shipped it). Asked again while
    Airflow cannot answer."""

    async def runs() -> Any:
        try:
            return await airflow.raw_request(
                "GET", f"/api/v2/dags/{SHARED_DRILL_DAG_ID}/dagRuns", params={"limit": 100, "order_by": "-id"}
            )
        except AirflowError as exc:
            if exc.status != 404:
                raise
            return None

    data = await retried(runs, "the shared drill DAG's runs")
    if data is None:
        return {}
    prefix = drill_run_prefix(NAMESPACE, name)
    return {run["dag_run_id"]: run for run in data["dag_runs"] if run["dag_run_id"].startswith(prefix)}


async def queued_run(client: AirflowClient, dag_id: str, run_id: str) -> None:
    """A run that stays queued (its DAG paused) until the test ends it: a drill in flight."""

    async def triggered() -> bool:
        try:  # (a 5xx, AirflowUnavailable, is "not yet" for eventually: asked again)
            await client.set_paused(dag_id, True)
            await client.trigger_run(dag_id, run_id=run_id, conf={})
        except AirflowError as exc:
            if exc.status == 409:  # an earlier try's trigger went through
                return True
            if exc.status != 404:  # (404: Airflow has not parsed the file of this test yet)
                raise
            return False
        return True

    await eventually(triggered, within=AIRFLOW_WAIT, interval=0.5, what=f"a queued run of {dag_id}")


def annotations(kube: kmock.KubernetesEmulator, name: str) -> dict[str, Any]:
    return dict(stored(kube, NAMESPACE, name)["metadata"].get("annotations") or {})


def this_hour() -> datetime:
    """The start of the current hour (UTC): the hourly drill slot due now."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def hours_ago(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_a_due_slot_starts_one_signed_drill_and_records_it(
    kube: kmock.KubernetesEmulator, operator: Starter, airflow: AirflowClient, name: str
) -> None:
    spec = {**SPEC, "verification": {"schedule": HOURLY, "network": "drills"}}
    first_hour = this_hour()
    async with operator():
        await create_policy(kube, name, spec, creationTimestamp=hours_ago(3))
        verification = await eventually(
            lambda: (
                status_of(kube, name).get("verification", {}).get("startedRun")
                and status_of(kube, name)["verification"]
            ),
            within=AIRFLOW_WAIT,
        )
        run_id = verification["startedRun"]
        runs = await eventually(lambda: drills_of(airflow, name))
        started = await eventually(lambda: [e for e in events_for(kube, name) if e["reason"] == "DrillStarted"])
    # The slots due while the test ran: this hour's, and the next one's too if the hour turned meanwhile.
    slots = [first_hour + timedelta(hours=h) for h in range(int((this_hour() - first_hour) / timedelta(hours=1)) + 1)]
    due = {scheduled_drill_run_id(NAMESPACE, name, slot) for slot in slots}

    slot = moment(verification["lastScheduleTime"])
    assert slot in slots
    assert run_id == scheduled_drill_run_id(NAMESPACE, name, slot)
    assert moment(verification["nextDrill"]) == slot + timedelta(hours=1)
    assert run_id in runs
    assert set(runs) <= due  # three hourly slots were missed: one drill, for the newest (another if the hour turned)
    payload = verify_run_conf(
        RUN_SIGNING_KEY.encode(), runs[run_id]["conf"], dag_id=SHARED_DRILL_DAG_ID, run_id=run_id, now=0
    )
    assert (json.loads(payload)["namespace"], json.loads(payload)["name"]) == (NAMESPACE, name)
    announced = [e["message"] for e in started]
    assert f"run {run_id} of {SHARED_DRILL_DAG_ID}" in announced
    assert len(announced) == len(set(announced))
    assert set(announced) <= {f"run {due_run} of {SHARED_DRILL_DAG_ID}" for due_run in due}


async def test_a_slot_another_leader_started_already_counts_as_started(
    kube: kmock.KubernetesEmulator, operator: Starter, airflow: AirflowClient, name: str
) -> None:
    spec = {**SPEC, "verification": {"schedule": DAILY, "network": "drills"}}
    now = datetime.now(UTC)
    slot = due_drill_slot(DAILY, "UTC", now, now - timedelta(days=3))
    assert slot is not None
    run_id = scheduled_drill_run_id(NAMESPACE, name, slot)
    async with operator():  # ships the shared drill DAG at start-up
        # The first leader triggered the slot's drill and lost its lease before it recorded it; the drill has ended.
        await queued_run(airflow, SHARED_DRILL_DAG_ID, run_id)
        await end_run(airflow, SHARED_DRILL_DAG_ID, run_id, "failed")
        await create_policy(kube, name, spec, creationTimestamp=hours_ago(72))
        verification = await eventually(
            lambda: (
                status_of(kube, name).get("verification", {}).get("startedRun")
                and status_of(kube, name)["verification"]
            ),
            within=AIRFLOW_WAIT,
        )
        runs = await drills_of(airflow, name)

    if moment(verification["lastScheduleTime"]) == slot:  # (else the day turned during the test)
        assert verification["startedRun"] == run_id  # Airflow's 409: already started, not an error
        assert list(runs) == [run_id]
        assert not [e for e in events_for(kube, name) if e["reason"] == "DrillStarted"]


async def test_verify_now_starts_a_drill_and_removes_the_annotation(
    kube: kmock.KubernetesEmulator, operator: Starter, airflow: AirflowClient, name: str
) -> None:
    async with operator():
        await create_policy(kube, name, SPEC)
        await eventually(lambda: status_of(kube, name).get("verification", {}).get("nextDrill"), within=AIRFLOW_WAIT)
        await patch_policy(kube, name, {"metadata": {"annotations": {VERIFY_NOW_ANNOTATION: "2026-12-07T16:00:00Z"}}})
        await eventually(lambda: VERIFY_NOW_ANNOTATION not in annotations(kube, name), within=AIRFLOW_WAIT)
        # kopf patches the annotation's removal and the status in two requests: the status may come second.
        verification = await eventually(
            lambda: status_of(kube, name)["verification"].get("startedRun") and status_of(kube, name)["verification"]
        )
        runs = await drills_of(airflow, name)

    (run_id,) = runs
    assert run_id.startswith(f"{drill_run_prefix(NAMESPACE, name)}requested-")
    assert verification["startedRun"] == run_id
    assert verification["nextDrill"].endswith("-01-01T04:00:00Z")  # the schedule's own slot is still ahead


async def test_a_request_while_a_drill_runs_waits_for_it_to_end(
    kube: kmock.KubernetesEmulator, operator: Starter, airflow: AirflowClient, name: str
) -> None:
    in_flight = f"{drill_run_prefix(NAMESPACE, name)}requested-earlier"
    async with operator():
        await create_policy(kube, name, SPEC)
        await queued_run(airflow, SHARED_DRILL_DAG_ID, in_flight)
        await patch_policy(kube, name, {"metadata": {"annotations": {VERIFY_NOW_ANNOTATION: "now"}}})
        await eventually(
            lambda: [e for e in events_for(kube, name) if e["reason"] == "DrillWaiting" and in_flight in e["message"]],
            within=AIRFLOW_WAIT,
        )
        assert VERIFY_NOW_ANNOTATION in annotations(kube, name)  # kept: the request waits
        assert list(await drills_of(airflow, name)) == [in_flight]

        await end_run(airflow, SHARED_DRILL_DAG_ID, in_flight, "success")
        await eventually(lambda: VERIFY_NOW_ANNOTATION not in annotations(kube, name), within=AIRFLOW_WAIT)
        # kopf patches the annotation's removal and the status in two requests: the status may come second.
        requested = await eventually(lambda: status_of(kube, name)["verification"].get("startedRun"))
        runs = await drills_of(airflow, name)

    assert sorted(runs) == sorted([in_flight, requested])


async def test_a_drill_dag_file_of_an_earlier_version_goes_once_its_run_ended(
    kube: kmock.KubernetesEmulator,
    operator: Starter,
    airflow: AirflowClient,
    gcs_bucket: storage.Bucket,
    name: str,
) -> None:
    legacy = drill_dag_id_for(NAMESPACE, name)
    gcs_bucket.blob(dag_object_name(legacy)).upload_from_string(dag_source(legacy, task_id="plan"))
    await queued_run(airflow, legacy, LEGACY_RUN)
    async with operator():
        await create_policy(kube, name, SPEC)
        await eventually(lambda: status_of(kube, name).get("verification", {}).get("nextDrill"), within=AIRFLOW_WAIT)
        assert gcs_bucket.get_blob(dag_object_name(legacy)) is not None  # its drill is in flight

        await end_run(airflow, legacy, LEGACY_RUN, "success")
        await eventually(lambda: gcs_bucket.get_blob(dag_object_name(legacy)) is None, within=AIRFLOW_WAIT)


@pytest.fixture
async def legacy_in_flight(airflow: AirflowClient, gcs_bucket: storage.Bucket, name: str) -> str:
    """The policy's drill DAG file of an earlier version, with a drill of it in flight; the file's object name."""
    legacy = drill_dag_id_for(NAMESPACE, name)
    gcs_bucket.blob(dag_object_name(legacy)).upload_from_string(dag_source(legacy, task_id="plan"))
    await queued_run(airflow, legacy, LEGACY_RUN)
    return dag_object_name(legacy)


def deletion_retried(kube: kmock.KubernetesEmulator, name: str) -> bool:
    """kopf's progress record says the policy's deletion handler ran and was told to try again later."""
    annotations = stored(kube, NAMESPACE, name)["metadata"].get("annotations") or {}
    progress = [json.loads(v) for k, v in annotations.items() if k.endswith("remove-dag")]
    return any(p.get("retries", 0) >= 1 and not p.get("success") for p in progress)


async def test_a_deleted_policy_keeps_its_drill_dag_file_of_an_earlier_version_until_its_run_ended(
    kube: kmock.KubernetesEmulator,
    operator: Starter,
    airflow: AirflowClient,
    gcs_bucket: storage.Bucket,
    name: str,
    legacy_in_flight: str,
) -> None:
    async with operator():
        await create_policy(kube, name, SPEC)
        await eventually(lambda: status_of(kube, name).get("dagHash"), within=AIRFLOW_WAIT)
        async with kube.delete(policy_url(NAMESPACE, name)):
            pass
        held = await eventually(lambda: deletion_retried(kube, name), within=AIRFLOW_WAIT)
        kept = gcs_bucket.get_blob(legacy_in_flight) is not None
        finalizers = stored(kube, NAMESPACE, name)["metadata"].get("finalizers") or []
        backup_dag_gone = gcs_bucket.get_blob(dag_object_name(dag_id_for(NAMESPACE, name))) is None

        await end_run(airflow, drill_dag_id_for(NAMESPACE, name), LEGACY_RUN, "success")
        await eventually(lambda: kube.objects[POLICIES, NAMESPACE, name].deleted, within=AIRFLOW_WAIT)

    assert (held, kept, FINALIZER in finalizers, backup_dag_gone) == (True, True, True, True)
    assert gcs_bucket.get_blob(legacy_in_flight) is None


async def test_a_policy_that_moved_keeps_its_old_drill_dag_file_of_an_earlier_version_until_its_run_ended(
    kube: kmock.KubernetesEmulator,
    operator: Starter,
    airflow: AirflowClient,
    gcs_bucket: storage.Bucket,
    gcs_client: storage.Client,
    name: str,
    legacy_in_flight: str,
) -> None:
    other = gcs_client.bucket(OTHER_BUCKET)
    if not other.exists():
        gcs_client.create_bucket(OTHER_BUCKET)
    backup_dag = dag_object_name(dag_id_for(NAMESPACE, name))
    async with operator():
        await create_policy(kube, name, SPEC)
        await eventually(lambda: status_of(kube, name).get("dagHash"), within=AIRFLOW_WAIT)
        await patch_policy(kube, name, {"spec": {"composer": OTHER_TARGET}})
        await eventually(lambda: gcs_bucket.get_blob(backup_dag) is None, within=AIRFLOW_WAIT)  # moved
        await eventually(lambda: other.get_blob(backup_dag) is not None, within=AIRFLOW_WAIT)
        # A status refresh with the new target (whose Airflow does not answer) has come since the move.
        await eventually(
            lambda: condition(kube, name, "AirflowReachable").get("status") == "False", within=AIRFLOW_WAIT
        )
        kept = gcs_bucket.get_blob(legacy_in_flight) is not None

        await end_run(airflow, drill_dag_id_for(NAMESPACE, name), LEGACY_RUN, "success")
        await eventually(lambda: gcs_bucket.get_blob(legacy_in_flight) is None, within=AIRFLOW_WAIT)

    assert kept


async def test_a_drill_run_that_failed_before_reporting_shows_as_a_failed_drill(
    kube: kmock.KubernetesEmulator,
    start_controller: ConfiguredStarter,
    config: ControllerConfig,
    airflow: AirflowClient,
    name: str,
) -> None:
    # A controller whose signing key is not the workers': Airflow's workers refuse every task of its drill (the
    # report task too), so the run fails without a drill report, as it would on Composer.
    another_key = dataclasses.replace(config, run_signing_key=secrets.token_hex(32))
    async with start_controller(another_key):
        await create_policy(kube, name, SPEC)
        await eventually(lambda: status_of(kube, name).get("verification", {}).get("nextDrill"), within=AIRFLOW_WAIT)
        await patch_policy(kube, name, {"metadata": {"annotations": {VERIFY_NOW_ANNOTATION: "now"}}})
        run_id = await eventually(
            lambda: status_of(kube, name).get("verification", {}).get("startedRun"), within=AIRFLOW_WAIT
        )
        verification = await eventually(
            lambda: status_of(kube, name)["verification"].get("result") and status_of(kube, name)["verification"],
            within=REFUSED_RUN_WAIT,
            what=f"{run_id} shown as a failed drill",
        )
        failed = await eventually(lambda: [e for e in events_for(kube, name) if e["reason"] == "RestoreDrillFailed"])
        runs = await drills_of(airflow, name)

    assert runs[run_id]["state"] == "failed"
    assert verification["result"] == "Failed"
    assert verification["message"].startswith(f"drill run {run_id} failed before reporting")
    assert SIGNING_KEY_ENV in verification["message"]
    assert len(failed) == 1
