"""What a restore waits for, from its run's task instances as Airflow reports them (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller.airflow_api import TaskInstanceInfo
from controller.conditions import RESTORE_RUN_STARTED, RESTORE_WAITING, find_condition
from controller.restore_progress import (
    CREATING_DISKS,
    DAG_NOT_IN_AIRFLOW,
    PLANNING,
    RUN_QUEUED,
    STARTING_INSTANCE,
    WORKER_QUEUED,
    Waiting,
    not_started,
    progress_status,
    waiting_in_run,
)
from vmbackup.restore import steps

NOW = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


def task(task_id: str, state: str | None, map_index: int = -1) -> TaskInstanceInfo:
    return TaskInstanceInfo(task_id, state, 1, map_index, None, None)


def test_a_queued_run_waits_for_the_scheduler() -> None:
    assert waiting_in_run("r", "queued", []) == Waiting(
        RUN_QUEUED, "Airflow's scheduler to start run r (queued behind other runs?)"
    )


def test_a_queued_first_step_waits_for_a_worker() -> None:
    waiting = waiting_in_run("r", "running", [task(steps.PLAN, "queued")])

    assert waiting is not None
    assert waiting.reason == WORKER_QUEUED
    assert steps.PLAN in waiting.message


def test_the_plan_running_is_planning() -> None:
    waiting = waiting_in_run("r", "running", [task(steps.PLAN, "running")])

    assert waiting is not None
    assert waiting.reason == PLANNING


def test_disks_being_created_are_counted() -> None:
    tasks = [
        task(steps.PLAN, "success"),
        task(steps.CREATE_DISK_ID, "success", 0),
        task(steps.CREATE_DISK_ID, "success", 1),
        task(steps.WAIT_DISK_ID, "success", 0),
        task(steps.WAIT_DISK_ID, "deferred", 1),
        task(steps.CREATE_INSTANCE, None),
    ]

    waiting = waiting_in_run("r", "running", tasks)

    assert waiting is not None
    assert waiting.reason == CREATING_DISKS
    assert "1 of 2 ready" in waiting.message
    assert "triggerer" in waiting.message


def test_the_instance_step_is_the_vm_starting() -> None:
    tasks = [task(steps.WAIT_DISK_ID, "success", 0), task(steps.WAIT_INSTANCE, "up_for_reschedule")]

    waiting = waiting_in_run("r", "running", tasks)

    assert waiting is not None
    assert waiting.reason == STARTING_INSTANCE


def test_an_ended_run_waits_for_nothing() -> None:
    assert waiting_in_run("r", "success", []) is None


def test_waiting_since_stays_while_the_reason_stays() -> None:
    first = progress_status({}, Waiting(CREATING_DISKS, "0 of 2"), None, generation=1, now=NOW)
    later = progress_status(first, Waiting(CREATING_DISKS, "1 of 2"), None, generation=1, now=NOW + timedelta(10))

    assert later["waitingSince"] == first["waitingSince"] == "2026-12-07T03:00:00Z"
    assert later["waitingFor"] == "1 of 2"


def test_waiting_since_moves_when_the_reason_changes() -> None:
    first = progress_status({}, Waiting(CREATING_DISKS, "disks"), None, generation=1, now=NOW)
    later = progress_status(first, Waiting(STARTING_INSTANCE, "vm"), None, generation=1, now=NOW + timedelta(hours=1))

    assert later["waitingSince"] == "2026-12-07T04:00:00Z"


def test_a_restore_that_cannot_start_says_why_in_its_conditions() -> None:
    waiting, started = not_started(DAG_NOT_IN_AIRFLOW, "the restore DAG to reach Airflow")

    fields = progress_status({}, waiting, started, generation=1, now=NOW)

    run_started = find_condition(fields["conditions"], RESTORE_RUN_STARTED)
    waits = find_condition(fields["conditions"], RESTORE_WAITING)
    assert run_started is not None
    assert (run_started["status"], run_started["reason"]) == ("False", DAG_NOT_IN_AIRFLOW)
    assert waits is not None
    assert (waits["status"], waits["message"]) == ("True", "the restore DAG to reach Airflow")


def test_an_ended_restore_clears_what_it_waited_for() -> None:
    first = progress_status({}, Waiting(CREATING_DISKS, "disks"), None, generation=1, now=NOW)

    ended = progress_status(first, None, None, generation=1, now=NOW)

    assert (ended["waitingFor"], ended["waitingSince"]) == (None, None)
    waits = find_condition(ended["conditions"], RESTORE_WAITING)
    assert waits is not None
    assert waits["status"] == "False"
