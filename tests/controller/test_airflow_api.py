"""AirflowClient against real Airflow servers: Airflow 3 (/api/v2, JWT) and Airflow 2.10 (/api/v1, basic auth)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from controller.airflow_api import AirflowClient, DagRunInfo
from controller.airflow_auth import BasicAuth, JwtAuth, make_auth
from controller.airflow_errors import AirflowAuthError, AirflowError, AirflowUnavailable
from controller.airflow_link import AirflowControl
from tests.controller.conftest import retried
from tests.fixtures.airflow_api import AirflowServer, broken_dag_source, dag_source
from tests.fixtures.gcs import free_port
from tests.fixtures.waits import eventually
from vmbackup.model.run_signature import sign_run_conf, verify_run_conf

SUCCEEDS = "vmbackup__apitest__succeeds"
FAILS = "vmbackup__apitest__fails"
IDLE = "vmbackup__apitest__idle"
PAUSABLE = "vmbackup__apitest__pausable"
SCHEDULED = "vmbackup__apitest__scheduled"
BATCH_A = "vmbackup__apitest__batch_a"
BATCH_B = "vmbackup__apitest__batch_b"
UNMANAGED = "someone_elses_dag"
BROKEN = "vmbackup__apitest__broken"
IN_FLIGHT = "vmbackup__apitest__in_flight"
FAILURE_MESSAGE = "snapshot quota exceeded in us-central1"


@pytest.fixture(scope="module")
def dags(airflow_api: AirflowServer) -> AirflowServer:
    """The module's DAG files, written together so Airflow parses them in one pass."""
    airflow_api.write_dag(SUCCEEDS, dag_source(SUCCEEDS))
    airflow_api.write_dag(FAILS, dag_source(FAILS, fail_with=FAILURE_MESSAGE))
    airflow_api.write_dag(IDLE, dag_source(IDLE))
    airflow_api.write_dag(PAUSABLE, dag_source(PAUSABLE))
    airflow_api.write_dag(SCHEDULED, dag_source(SCHEDULED, schedule="0 2 * * *", start_date="2099-01-01"))
    airflow_api.write_dag(BATCH_A, dag_source(BATCH_A))
    airflow_api.write_dag(BATCH_B, dag_source(BATCH_B))
    airflow_api.write_dag(UNMANAGED, dag_source(UNMANAGED))
    airflow_api.write_dag(IN_FLIGHT, dag_source(IN_FLIGHT))
    for dag_id in (SUCCEEDS, FAILS, IDLE, PAUSABLE, SCHEDULED, BATCH_A, BATCH_B, UNMANAGED, IN_FLIGHT):
        airflow_api.wait_for_dag(dag_id)
    return airflow_api


async def wait_for_run(client: AirflowClient, dag_id: str, run_id: str) -> DagRunInfo:
    """Poll the run (Airflow pushes nothing) until it ends, within a deadline."""

    async def finished() -> DagRunInfo | None:
        run = await client.get_run(dag_id, run_id)
        return run if run.finished else None

    return await eventually(finished, interval=0.5, what=f"run {dag_id}/{run_id} finished")


async def started(client: AirflowClient, dag_id: str, run_id: str) -> None:
    """A run a test needs (not the trigger it tests): asked again while Airflow cannot answer; an earlier try's
    run counts (AirflowControl's trigger takes Airflow's 409 for the same id as started)."""
    await retried(lambda: AirflowControl(client).trigger_run(dag_id, run_id), f"run {dag_id}/{run_id} started")


async def test_detects_the_api_generation(airflow_api: AirflowServer) -> None:
    async with airflow_api.client() as client:
        assert await client.api_version() == (2 if airflow_api.major == 3 else 1)
        assert (await client.version()).startswith(f"{airflow_api.major}.")


async def test_wrong_password_is_a_clear_auth_error(airflow_api: AirflowServer) -> None:
    auth = (
        JwtAuth(airflow_api.username, "wrong") if airflow_api.major == 3 else BasicAuth(airflow_api.username, "wrong")
    )
    async with AirflowClient(airflow_api.base_url, auth) as client:
        with pytest.raises(AirflowAuthError) as caught:
            await client.list_dags()
    assert caught.value.status == 401
    if airflow_api.major == 3:
        assert "rejected the username and password of user 'admin'" in str(caught.value)


async def test_lists_managed_dags_only(dags: AirflowServer) -> None:
    async with dags.client() as client:
        listed = {dag.dag_id: dag for dag in await client.list_dags()}
    assert {SUCCEEDS, FAILS, IDLE, SCHEDULED} <= set(listed)
    assert UNMANAGED not in listed
    idle = listed[IDLE]
    assert idle.is_paused is False
    assert str(idle.fileloc).endswith(f"{IDLE}.py")


async def test_next_run_is_when_the_schedule_fires(dags: AirflowServer) -> None:
    async with dags.client() as client:
        listed = {dag.dag_id: dag for dag in await client.list_dags()}
    next_run = listed[SCHEDULED].next_run
    assert next_run is not None
    assert next_run.isoformat().startswith("2099-01-0")
    assert listed[IDLE].next_run is None


async def test_pauses_and_unpauses_a_dag(dags: AirflowServer) -> None:
    async with dags.client() as client:
        assert (await client.set_paused(PAUSABLE, True)).is_paused is True
        assert (await client.get_dag(PAUSABLE)).is_paused is True
        assert (await client.set_paused(PAUSABLE, False)).is_paused is False


async def test_triggered_run_finishes(dags: AirflowServer) -> None:
    async with dags.client() as client:
        queued = await client.trigger_run(SUCCEEDS, run_id="manual-finishes", conf={"reason": "backup-now"})
        assert queued.state in ("queued", "running")
        finished = await wait_for_run(client, SUCCEEDS, "manual-finishes")
    assert finished.state == "success"
    assert finished.conf == {"reason": "backup-now"}
    assert finished.end_date is not None


async def test_triggering_a_duplicate_run_id_is_refused(dags: AirflowServer) -> None:
    async with dags.client() as client:
        await client.trigger_run(IDLE, run_id="once")
        with pytest.raises(AirflowError) as caught:
            await client.trigger_run(IDLE, run_id="once")
    assert caught.value.status in (400, 409)


async def test_failed_run_names_the_failed_task_and_its_log_says_why(dags: AirflowServer) -> None:
    async with dags.client() as client:
        await started(client, FAILS, "manual-fails")
        run = await wait_for_run(client, FAILS, "manual-fails")
        tasks = await client.task_instances(FAILS, "manual-fails")
        failed = [task for task in tasks if task.state == "failed"]
        log = await client.task_log(FAILS, "manual-fails", failed[0].task_id, failed[0].try_number)
    assert run.state == "failed"
    assert [task.task_id for task in failed] == ["snapshot"]
    assert FAILURE_MESSAGE in log


async def test_latest_runs_of_several_dags_take_one_request(dags: AirflowServer) -> None:
    async with dags.client() as client:
        await client.api_version()
        await started(client, BATCH_A, "batch-first")
        await started(client, BATCH_A, "batch-second")
        await started(client, BATCH_B, "batch-only")
        before = client.requests
        latest = await client.latest_runs([BATCH_A, BATCH_B, "vmbackup__apitest__never_ran"])
        assert client.requests - before == 1
    assert latest[BATCH_A].run_id == "batch-second"
    assert latest[BATCH_B].run_id == "batch-only"
    assert "vmbackup__apitest__never_ran" not in latest


async def test_latest_runs_of_no_dags_costs_nothing(dags: AirflowServer) -> None:
    async with dags.client() as client:
        assert await client.latest_runs([]) == {}
        assert client.requests == 0


async def test_import_error_carries_airflows_message(dags: AirflowServer) -> None:
    dags.write_dag(BROKEN, broken_dag_source("the policy JSON is not valid"))
    dags.wait_for_import_error(f"{BROKEN}.py")
    async with dags.client() as client:
        errors = [e for e in await client.import_errors() if e.filename.endswith(f"{BROKEN}.py")]
    assert len(errors) == 1
    assert "the policy JSON is not valid" in errors[0].stack_trace


async def test_expired_token_is_renewed_once(airflow3_api: AirflowServer) -> None:
    auth = JwtAuth(airflow3_api.username, airflow3_api.password, token="not-a-valid-token")
    async with AirflowClient(airflow3_api.base_url, auth, api_version=2) as client:
        assert await client.list_dags() is not None
        assert client.requests == 3  # refused, new token, retried


async def test_unknown_dag_is_an_error_with_airflows_message(airflow_api: AirflowServer) -> None:
    async with airflow_api.client() as client:
        with pytest.raises(AirflowError) as caught:
            await client.set_paused("vmbackup__apitest__does_not_exist", True)
    assert caught.value.status == 404
    assert "vmbackup__apitest__does_not_exist" in caught.value.message


@pytest.mark.parametrize("api_version", [None, 1, 2])
async def test_airflow_down_is_unavailable(api_version: int | None) -> None:
    port = free_port()  # nothing listens there
    async with AirflowClient(f"http://127.0.0.1:{port}", api_version=api_version) as client:  # type: ignore[arg-type]
        with pytest.raises(AirflowUnavailable, match=f"127.0.0.1:{port}"):
            await client.list_dags()


async def test_google_auth_without_credentials_is_an_auth_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", f"{tmp_path}/missing-key.json")
    async with AirflowClient("http://127.0.0.1:9", make_auth("google"), api_version=2) as client:
        with pytest.raises(AirflowAuthError, match="no Google credentials for Cloud Composer"):
            await client.list_dags()
        assert client.requests == 0


@pytest.mark.parametrize(
    ("mode", "kwargs", "problem"),
    [
        ("basic", {"username": "admin"}, "basic auth needs a username and a password"),
        ("jwt", {}, "JwtAuth needs a token, or a username and password"),
        ("oauth", {}, "unknown Airflow auth mode 'oauth': use none, basic, jwt or google"),
    ],
)
def test_incomplete_auth_settings_are_refused(mode: str, kwargs: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        make_auth(mode, **kwargs)


async def test_a_restore_run_starts_once_with_its_signed_conf_intact(dags: AirflowServer) -> None:
    """What the controller does per VMRestore, on both API generations: a second start is "already started"."""
    key, payload, run_id = b"k" * 64, '{"restore":"data, never code"}', "vmrestore__uid-once"
    conf = sign_run_conf(key, dag_id=IDLE, run_id=run_id, payload=payload, expires_at=int(time.time()) + 600)
    async with dags.client() as client:
        control = AirflowControl(client)
        first = await control.start_run_once(IDLE, run_id, conf)
        again = await control.start_run_once(IDLE, run_id, conf)
        stored = (await client.get_run(IDLE, run_id)).conf

    assert (first, again) == (True, False)
    assert verify_run_conf(key, stored, dag_id=IDLE, run_id=run_id, now=time.time()) == payload


async def test_why_a_dag_file_does_not_import_is_its_last_line(dags: AirflowServer) -> None:
    """What a restore whose DAG file is broken says it waits for (RunStarted reason DagImportError)."""
    dags.write_dag(BROKEN, broken_dag_source("the policy JSON is not valid"))
    dags.wait_for_import_error(f"{BROKEN}.py")
    async with dags.client() as client:
        control = AirflowControl(client)
        why = await control.import_error(f"{BROKEN}.py")
        fine = await control.import_error(f"{IDLE}.py")

    assert why == "ImportError: the policy JSON is not valid"
    assert fine is None


async def test_active_runs_of_several_dags_are_the_queued_and_running_ones_in_one_request(dags: AirflowServer) -> None:
    """How the controller finds a drill in flight (the shared drill DAG and a policy's drill DAG of old)."""
    async with dags.client() as client:
        await retried(lambda: client.set_paused(IN_FLIGHT, True), f"{IN_FLIGHT} paused")  # its runs stay queued
        for run_id in ("vmdrill__shop__db__requested-1", "vmdrill__shop__web__requested-2", "ended"):
            await started(client, IN_FLIGHT, run_id)
        ended = f"{dags.api_prefix}/dags/{IN_FLIGHT}/dagRuns/ended"
        await retried(lambda: client.raw_request("PATCH", ended, json_body={"state": "failed"}), "run ended failed")
        before = client.requests
        active = await client.active_runs([IN_FLIGHT, "vmbackup__apitest__never_ran"])
        assert client.requests - before == 1
        assert await AirflowControl(client).active_runs([]) == []

    assert sorted((run.dag_id, run.run_id, run.state) for run in active) == [
        (IN_FLIGHT, "vmdrill__shop__db__requested-1", "queued"),
        (IN_FLIGHT, "vmdrill__shop__web__requested-2", "queued"),
    ]
