"""A missed slot in the status: result Missed, ScheduleOnTime=False with the reason, lastMissedSlot, a count."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from controller.conditions import SCHEDULE_ON_TIME, find_condition
from controller.run_status import PolicyRunStatus
from controller.status import PolicyState, RunObservation, desired_status
from tests.controller.conftest import written
from tests.controller.test_run_status import DAG_ID, END, START, dag, run
from vmbackup.model.report import MissedSlot, RunReport

SLOT = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
RUN_ID = "scheduled__2026-11-25T02:00:00+00:00"


def report(*, missed: MissedSlot | None, slot: datetime | None = SLOT) -> RunReport:
    return RunReport(
        namespace="default",
        name="wordpress",
        dag_id=DAG_ID,
        run_id=RUN_ID,
        consistency="stop",
        result="succeeded",
        started_at=START,
        finished_at=END,
        slot=slot,
        missed=missed,
    )


LATE = MissedSlot(slot=SLOT, reason="Late", message="started 2026-11-25T09:00:00Z, 7 h after its slot (deadline 900 s)")


def polled(report_: RunReport) -> PolicyRunStatus:
    return PolicyRunStatus("default", "wordpress", DAG_ID, dag=dag(), run=run("success", RUN_ID), report=report_)


def conditions_of(status: PolicyRunStatus) -> list[dict[str, Any]]:
    return [dataclasses.asdict(condition) for condition in status.conditions()]


def test_a_missed_slot_reads_as_result_missed_with_the_reason() -> None:
    status = polled(report(missed=LATE))
    fields = written(status)

    assert fields["result"] == "Missed"
    assert fields["lastMissedSlot"] == {"time": "2026-11-25T02:00:00Z", "reason": "Late", "message": LATE.message}
    assert fields["lastScheduleTime"] == "2026-11-25T02:00:00Z"
    assert "lastSnapshotTime" not in fields  # nothing was backed up
    schedule = find_condition(conditions_of(status), SCHEDULE_ON_TIME)
    assert schedule is not None
    assert (schedule["status"], schedule["reason"]) == ("False", "MissedLate")
    assert LATE.message in schedule["message"]
    assert find_condition(conditions_of(status), "LastBackupSucceeded") is None  # a missed slot is not a backup


def test_a_slot_that_ran_puts_schedule_on_time_back_to_true() -> None:
    status = polled(report(missed=None))

    assert written(status)["result"] == "Succeeded"
    schedule = find_condition(conditions_of(status), SCHEDULE_ON_TIME)
    assert schedule is not None
    assert (schedule["status"], schedule["reason"]) == ("True", "SlotRan")


def test_a_backup_asked_for_by_hand_says_nothing_about_the_schedule() -> None:
    status = polled(report(missed=None, slot=None))

    assert find_condition(conditions_of(status), SCHEDULE_ON_TIME) is None
    assert "lastScheduleTime" not in written(status)


def test_missed_slots_count_once_per_slot_however_many_polls_see_it() -> None:
    state = PolicyState("default", "wordpress", DAG_ID, outcome="Uploaded", dag_hash="h")
    observation = RunObservation(reachable=True, run=polled(report(missed=LATE)).run_fields(), dag_loaded=True)
    now = datetime(2026, 11, 25, 9, 1, tzinfo=UTC)

    first = desired_status(state, observation, {}, now).to_status()
    second = desired_status(state, observation, first, now).to_status()
    later = MissedSlot(slot=datetime(2026, 11, 26, 2, 0, tzinfo=UTC), reason="OutsideWindow", message="...")
    next_day = polled(report(missed=later, slot=later.slot)).run_fields()
    third = desired_status(
        state, RunObservation(reachable=True, run=next_day, dag_loaded=True), second, now
    ).to_status()

    assert (first["missedSlots"], second["missedSlots"], third["missedSlots"]) == (1, 1, 2)
    assert first["result"] == "Missed"
