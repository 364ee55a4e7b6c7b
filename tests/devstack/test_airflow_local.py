"""LocalAirflow: a real Airflow 3 (scheduler, DAG processor, API server, triggerer) started and stopped on loopback."""

from __future__ import annotations

import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devstack.airflow_local import AirflowApiError, LocalAirflow, PortInUseError
from devstack.airflow_processes import configured_value
from tests.fixtures.waits import wait_until

pytest.importorskip("airflow.sdk", reason="LocalAirflow's tests run on Airflow 3 (.venv)")

TWO_TASKS_DAG = """
import pendulum
from airflow.sdk import dag, task


@dag(dag_id="two_tasks", schedule=None, start_date=pendulum.datetime(2024, 1, 1), catchup=False)
def two_tasks():
    @task
    def first():
        return 20

    @task
    def second(value):
        return value + 22

    second(first())


two_tasks()
"""

SLEEPING_DAG = """
import time

import pendulum
from airflow.sdk import dag, task


@dag(dag_id="sleeps", schedule=None, start_date=pendulum.datetime(2024, 1, 1), catchup=False)
def sleeps():
    @task
    def nap():
        time.sleep(600)

    nap()


sleeps()
"""


DAG_LIST_INTERVAL = 3  # not the file process interval (2): the test below tells the two apart


def write_dag(folder: Path, name: str, source: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(source))


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAirflow]:
    dags = tmp_path_factory.mktemp("dags")
    write_dag(dags, "two_tasks.py", TWO_TASKS_DAG)
    with LocalAirflow(dags, parallelism=4, min_file_process_interval=2, dag_list_interval=DAG_LIST_INTERVAL) as local:
        yield local


HEALTH_PARTS = ("metadatabase", "scheduler", "dag_processor", "triggerer")


def test_reports_every_component_healthy(airflow: LocalAirflow) -> None:
    def all_healthy() -> dict[str, str] | None:
        health = airflow.api.health()
        found = {part: health[part]["status"] for part in HEALTH_PARTS}
        return found if set(found.values()) == {"healthy"} else None

    # A part is healthy while its heartbeat is recent: on a loaded machine one can be late for a moment, so the test
    # waits for the state it asserts instead of reading it once.
    assert wait_until(all_healthy, what="every part healthy") == dict.fromkeys(HEALTH_PARTS, "healthy")


def test_airflow_itself_lists_the_dags_folder_at_the_given_interval(airflow: LocalAirflow) -> None:
    """The modelled listing interval is the real Airflow's own option (Composer's: devstack/composer_timing.py)."""
    env = airflow.environment()

    assert configured_value(airflow.bin_dir, env, "dag_processor", "refresh_interval") == str(DAG_LIST_INTERVAL)
    assert configured_value(airflow.bin_dir, env, "dag_processor", "min_file_process_interval") == "2"


def test_runs_on_local_executor(airflow: LocalAirflow) -> None:
    assert airflow.executor == "LocalExecutor"


def test_runs_a_dag_end_to_end_through_the_rest_api(airflow: LocalAirflow) -> None:
    run = airflow.api.run_dag("two_tasks", timeout=180)

    states = {ti["task_id"]: ti["state"] for ti in airflow.api.task_instances("two_tasks", run.run_id)}
    assert states == {"first": "success", "second": "success"}, airflow.log_tail()
    assert run.state == "success"


def test_event_log_records_each_task_execution(airflow: LocalAirflow) -> None:
    run = airflow.api.run_dag("two_tasks", timeout=180)

    events = [(e["task_id"], e["event"]) for e in airflow.api.event_logs("two_tasks", run.run_id) if e["task_id"]]
    assert ("first", "running") in events
    assert ("second", "success") in events


def test_refuses_a_wrong_password(airflow: LocalAirflow) -> None:
    resp = requests.post(f"{airflow.url}/auth/token", json={"username": airflow.username, "password": "wrong"})

    assert resp.status_code == 401


def test_names_the_dag_an_api_error_is_about(airflow: LocalAirflow) -> None:
    with pytest.raises(AirflowApiError, match="no_such_dag"):
        airflow.api.trigger("no_such_dag")


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(PortInUseError, match=f"port {port} .* in use"):
            LocalAirflow(tmp_path, port=port).start()


def test_stop_ends_every_process_including_running_tasks(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    write_dag(dags, "sleeps.py", SLEEPING_DAG)
    local = LocalAirflow(dags, home=tmp_path / "home", parallelism=2, min_file_process_interval=2).start()
    try:
        local.api.wait_for_dag("sleeps", timeout=180)
        local.api.unpause("sleeps")
        run_id = local.api.trigger("sleeps")

        def nap_is_running() -> bool:
            return any(ti["state"] == "running" for ti in local.api.task_instances("sleeps", run_id))

        wait_until(nap_is_running, within=180, what="the sleeping task running")
    finally:
        local.stop()

    assert local.leftover_processes() == []
