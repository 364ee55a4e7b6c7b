"""RunStatusPoller against a real Airflow (both lines) and run reports in the emulated Composer bucket."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from controller.airflow_api import AirflowClient
from controller.airflow_auth import BasicAuth, JwtAuth
from controller.airflow_link import AirflowControl
from controller.run_reports import RunReportReader
from controller.run_status import PolicyRunStatus, RunStatusPoller
from controller.status import PolicyKey
from tests.controller.conftest import retried, written
from tests.fixtures.airflow_api import AirflowServer, broken_dag_source, dag_source
from tests.fixtures.gcs import GCS_PROJECT, free_port
from tests.fixtures.waits import eventually
from vmbackup.model.policy import dag_id_for
from vmbackup.model.report import (
    DiskResult,
    InstanceResult,
    RunReport,
    StepError,
    latest_report_object_name,
    report_object_name,
)

NS = "polltest"
SUCCEEDED = (NS, "succeeded")
FAILED = (NS, "failed")
REPORTED_FAILURE = (NS, "reported-failure")
IDLE = (NS, "idle")
PAUSED = (NS, "paused")
BROKEN = (NS, "broken")
RUNNING = (NS, "running")
NOT_UPLOADED = (NS, "not-uploaded")
ALL = [SUCCEEDED, FAILED, REPORTED_FAILURE, IDLE, PAUSED, BROKEN, RUNNING, NOT_UPLOADED]
SNAPSHOT = "succeeded-vm-20261125-0200-3f9a1c2b"


@dataclasses.dataclass
class Scenario:
    server: AirflowServer
    bucket: storage.Bucket

    def poller(self) -> RunStatusPoller:
        return RunStatusPoller(self.server.client(), RunReportReader(self.bucket))


def write_report(bucket: storage.Bucket, key: PolicyKey, run_id: str, errors: list[StepError]) -> None:
    namespace, name = key
    report = RunReport(
        namespace=namespace,
        name=name,
        dag_id=dag_id_for(namespace, name),
        run_id=run_id,
        consistency="stop",
        result="failed" if errors else "succeeded",
        started_at=datetime(2026, 11, 25, 2, 0, 3, tzinfo=UTC),
        finished_at=datetime(2026, 11, 25, 2, 0, 41, tzinfo=UTC),
        instances=[
            InstanceResult(
                instance=f"{name}-vm",
                zone="us-central1-c",
                disks=[DiskResult(disk=f"{name}-vm", zone="us-central1-c", snapshot=SNAPSHOT, state="READY")],
            )
        ],
        errors=errors,
    )
    data = report.model_dump_json(by_alias=True)
    bucket.blob(report_object_name(namespace, name, run_id)).upload_from_string(data)
    bucket.blob(latest_report_object_name(namespace, name)).upload_from_string(data)


@pytest.fixture(scope="module")
def scenario(
    airflow_api: AirflowServer, gcs_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    """One DAG per situation, driven into it through the REST API; reports uploaded as the DAG would."""
    server = airflow_api
    release = tmp_path_factory.mktemp("release") / "go"
    sources = {
        SUCCEEDED: dag_source(dag_id_for(*SUCCEEDED)),
        FAILED: dag_source(dag_id_for(*FAILED), fail_with="instance succeeded-vm did not stop in 300s"),
        REPORTED_FAILURE: dag_source(dag_id_for(*REPORTED_FAILURE)),
        IDLE: dag_source(dag_id_for(*IDLE), schedule="0 2 * * *", start_date="2099-01-01"),
        PAUSED: dag_source(dag_id_for(*PAUSED)),
        RUNNING: dag_source(dag_id_for(*RUNNING), wait_for_file=Path(release)),
        BROKEN: broken_dag_source("spec.instances[0].zone: 'us-central1' is not a zone"),
    }
    for key, source in sources.items():
        server.write_dag(dag_id_for(*key), source)
    for key in sources.keys() - {BROKEN}:
        server.wait_for_dag(dag_id_for(*key))
    server.wait_for_import_error(f"{dag_id_for(*BROKEN)}.py")

    bucket = storage.Client(project=GCS_PROJECT, credentials=AnonymousCredentials()).bucket(
        f"polltest-airflow{server.major}"
    )
    if not bucket.exists():
        bucket.create()

    async def drive() -> None:
        async with server.client() as client:
            await retried(lambda: client.set_paused(dag_id_for(*PAUSED), True), "the paused DAG paused")
            for key in (SUCCEEDED, FAILED, REPORTED_FAILURE):
                await _trigger(client, dag_id_for(*key))

    asyncio.run(drive())
    server.wait_for_run_state(dag_id_for(*SUCCEEDED), "poll-1", {"success"})
    server.wait_for_run_state(dag_id_for(*FAILED), "poll-1", {"failed"})
    server.wait_for_run_state(dag_id_for(*REPORTED_FAILURE), "poll-1", {"success"})
    server.mark_run(dag_id_for(*REPORTED_FAILURE), "poll-1", "failed")  # the report says why; no task process needed
    write_report(bucket, SUCCEEDED, "poll-1", [])
    write_report(bucket, REPORTED_FAILURE, "poll-1", [StepError(step="tier_db.stop", message="did not stop")])

    # Last: on Airflow 2 the SequentialExecutor runs nothing else while this task waits.
    asyncio.run(_trigger_on(server, dag_id_for(*RUNNING)))
    server.wait_for_run_state(dag_id_for(*RUNNING), "poll-1", {"running"})
    try:
        yield Scenario(server, bucket)
    finally:
        release.touch()
        server.wait_for_run_state(dag_id_for(*RUNNING), "poll-1", {"success"})


async def _trigger(client: AirflowClient, dag_id: str) -> None:
    """Run poll-1 of the DAG, asked again while Airflow cannot answer (an earlier try's run counts: its 409)."""
    await retried(lambda: AirflowControl(client).trigger_run(dag_id, "poll-1"), f"poll-1 of {dag_id} started")


async def _trigger_on(server: AirflowServer, dag_id: str) -> None:
    async with server.client() as client:
        await _trigger(client, dag_id)


@pytest.fixture(scope="module")
def polled(scenario: Scenario) -> dict[PolicyKey, PolicyRunStatus]:
    """One poll of every policy that Airflow answered: polled again while it did not (a 5xx, e.g. "Database error"
    while the test Airflow's sqlite is busy, makes every policy's status "unreachable")."""

    async def answered() -> dict[PolicyKey, PolicyRunStatus] | None:
        poller = scenario.poller()
        async with poller.client:
            statuses = await poller.poll(ALL)
        return statuses if all(status.reachable for status in statuses.values()) else None

    return asyncio.run(eventually(answered, interval=0.5, what="a poll Airflow answered"))


def test_succeeded_run_reports_its_snapshots(polled: dict[PolicyKey, PolicyRunStatus]) -> None:
    fields = written(polled[SUCCEEDED])
    assert fields["result"] == "Succeeded"
    assert fields["lastRun"]["runId"] == "poll-1"
    assert fields["lastSnapshots"] == [SNAPSHOT]
    assert fields["lastSnapshotTime"] == "2026-11-25T02:00:41Z"


def test_failed_run_without_report_names_the_failed_task(polled: dict[PolicyKey, PolicyRunStatus]) -> None:
    last_run = written(polled[FAILED])["lastRun"]
    assert polled[FAILED].result == "Failed"
    assert last_run["failedStep"] == "snapshot"
    assert last_run["message"] == "task snapshot failed (try 1); its log in Airflow says why"


def test_failed_run_with_report_names_the_reported_step(polled: dict[PolicyKey, PolicyRunStatus]) -> None:
    last_run = written(polled[REPORTED_FAILURE])["lastRun"]
    assert last_run["failedStep"] == "tier_db.stop"
    assert last_run["message"] == "tier_db.stop failed: did not stop"


def test_dag_that_never_ran_is_pending_with_its_next_run(polled: dict[PolicyKey, PolicyRunStatus]) -> None:
    fields = written(polled[IDLE])
    assert fields["result"] == "Pending"
    assert fields["nextRun"].startswith("2099-01-0")


def test_paused_dag_is_suspended(polled: dict[PolicyKey, PolicyRunStatus]) -> None:
    paused = polled[PAUSED]
    assert paused.result == "Suspended"
    assert paused.dag is not None
    assert paused.dag.is_paused


def test_running_run_is_running(polled: dict[PolicyKey, PolicyRunStatus]) -> None:
    assert polled[RUNNING].result == "Running"


def test_import_error_surfaces_airflows_message(polled: dict[PolicyKey, PolicyRunStatus]) -> None:
    found = next(c for c in polled[BROKEN].conditions() if c.type == "DagImportError")
    assert found.status == "True"
    assert "spec.instances[0].zone: 'us-central1' is not a zone" in found.message


def test_dag_not_uploaded_is_not_loaded(polled: dict[PolicyKey, PolicyRunStatus]) -> None:
    assert polled[NOT_UPLOADED].dag_loaded is False
    assert polled[NOT_UPLOADED].result == "Pending"


async def test_a_cycle_costs_three_requests_once_failures_are_known(scenario: Scenario) -> None:
    poller = scenario.poller()
    async with poller.client:
        await poller.poll(ALL)
        requests, reads = poller.client.requests, poller.reports.reads if poller.reports else 0
        await poller.poll(ALL)
        assert poller.client.requests - requests == 3
        assert poller.reports is not None
        assert poller.reports.reads == reads


async def test_unreachable_airflow_gives_every_policy_a_reason() -> None:
    poller = RunStatusPoller(AirflowClient(f"http://127.0.0.1:{free_port()}"))
    async with poller.client:
        polled = await poller.poll(ALL)
    assert set(polled) == set(ALL)
    for status in polled.values():
        reachable = next(c for c in status.conditions() if c.type == "AirflowReachable")
        assert (reachable.status, reachable.reason) == ("False", "Unreachable")


async def test_rejected_credentials_are_named_as_such(airflow_api: AirflowServer) -> None:
    auth = JwtAuth("admin", "wrong") if airflow_api.major == 3 else BasicAuth("admin", "wrong")
    poller = RunStatusPoller(AirflowClient(airflow_api.base_url, auth))
    async with poller.client:
        polled = await poller.poll([SUCCEEDED])
    reachable = polled[SUCCEEDED].conditions()[0]
    assert (reachable.type, reachable.status, reachable.reason) == (
        "AirflowReachable",
        "False",
        "AuthenticationFailed",
    )
