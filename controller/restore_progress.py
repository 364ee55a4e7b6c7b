"""What a restore waits for, in words a person restoring a VM at 3 a.m. can act on; pure functions.

The restore handlers (controller/restore_handlers.py) decide *that* a restore waits (its run cannot start yet, or
its run is at some step); this module says *what for*, from the Airflow run's task instances, and turns it into
the VMRestore's status: `waitingFor` and `waitingSince` (the printer columns of `kubectl get vmrestores` and what
`vmbackupctl restore --wait` prints) and the RunStarted and Waiting conditions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from controller.airflow_api import TaskInstanceInfo
from controller.conditions import (
    RESTORE_RUN_STARTED,
    RESTORE_WAITING,
    Condition,
    find_condition,
    merge_conditions,
    rfc3339,
)
from vmbackup.restore import steps

# Why a restore's run has not started (reasons of RunStarted=False and of Waiting)
POLICY_NOT_FOUND = "PolicyNotFound"
TARGET_UNAVAILABLE = "TargetUnavailable"
SIGNING_KEY_MISSING = "SigningKeyMissing"
AIRFLOW_UNREACHABLE = "AirflowUnreachable"
DAG_NOT_IN_AIRFLOW = "DagNotInAirflow"
DAG_IMPORT_ERROR = "DagImportError"
RUN_REFUSED = "RunRefused"
# Where a started run is (reasons of Waiting=True)
RUN_QUEUED = "RunQueued"
WORKER_QUEUED = "WorkerQueued"
RETRYING = "Retrying"
PLANNING = "Planning"
CREATING_DISKS = "CreatingDisks"
STARTING_INSTANCE = "StartingInstance"
REPLACING_DISKS = "ReplacingDisks"
FINISHING = "Finishing"
FINISHED = "Finished"  # Waiting=False once the restore ended

ACTIVE_TASK_STATES = ("scheduled", "queued", "running", "up_for_retry", "up_for_reschedule", "deferred", "restarting")
STEP_ORDER = (
    steps.PLAN,
    steps.PLANNED_DISKS,
    steps.CREATE_DISK_ID,
    steps.WAIT_DISK_ID,
    steps.CREATE_INSTANCE,
    steps.WAIT_INSTANCE,
    steps.REPLACE_DISKS,
    steps.SETTLE,
    steps.CLEANUP,
    steps.REPORT,
)


@dataclasses.dataclass(frozen=True)
class Waiting:
    """What the restore waits for now: a condition reason and the words shown in `waitingFor`."""

    reason: str
    message: str


def waiting_in_run(run_id: str, run_state: str | None, tasks: Sequence[TaskInstanceInfo]) -> Waiting | None:
    """What a started run waits for; None once it has ended (or Airflow did not say)."""
    if run_state == "queued":
        return Waiting(RUN_QUEUED, f"Airflow's scheduler to start run {run_id} (queued behind other runs?)")
    if run_state != "running":
        return None
    active = sorted((t for t in tasks if t.state in ACTIVE_TASK_STATES), key=lambda t: _step_index(t.task_id))
    if not active:
        return Waiting(WORKER_QUEUED, "Airflow's scheduler to queue the next step")
    task = active[0]
    if task.state in ("scheduled", "queued"):
        return Waiting(WORKER_QUEUED, f"a free Airflow worker to run step {task.task_id} (queued)")
    if task.state == "up_for_retry":
        return Waiting(RETRYING, f"step {task.task_id} to be tried again (try {task.try_number} failed)")
    where = " (in the triggerer)" if task.state == "deferred" else ""
    return _at_step(task.task_id, tasks, where)


def _step_index(task_id: str) -> int:
    return STEP_ORDER.index(task_id) if task_id in STEP_ORDER else len(STEP_ORDER)


def _at_step(task_id: str, tasks: Sequence[TaskInstanceInfo], where: str) -> Waiting:
    if task_id in (steps.PLAN, steps.PLANNED_DISKS):
        return Waiting(PLANNING, f"the plan: choosing the snapshots and reading the source VM{where}")
    if task_id in (steps.CREATE_DISK_ID, steps.WAIT_DISK_ID):
        total = len([t for t in tasks if t.task_id == steps.CREATE_DISK_ID and t.map_index >= 0])
        ready = len([t for t in tasks if t.task_id == steps.WAIT_DISK_ID and t.state == "success"])
        return Waiting(CREATING_DISKS, f"disks being created from the snapshots ({ready} of {total} ready){where}")
    if task_id in (steps.CREATE_INSTANCE, steps.WAIT_INSTANCE):
        return Waiting(STARTING_INSTANCE, f"the new VM being created and started{where}")
    if task_id == steps.REPLACE_DISKS:
        return Waiting(REPLACING_DISKS, f"the VM's disks being replaced (the VM is stopped meanwhile){where}")
    return Waiting(FINISHING, f"step {task_id}: the restore's cleanup and report{where}")


def progress_status(
    current: Mapping[str, Any],
    waiting: Waiting | None,
    started: Condition | None,
    *,
    generation: int,
    now: datetime,
) -> dict[str, Any]:
    """The status fields saying what the restore waits for and since when (None values remove a field).

    `waitingSince` moves only when what it waits for changes (the reason), so it says how long this wait lasts.
    """
    conditions: Iterable[Mapping[str, Any]] = current.get("conditions") or ()
    previous = find_condition(list(conditions), RESTORE_WAITING)
    updates = [started] if started is not None else []
    if waiting is None:
        updates.append(Condition(RESTORE_WAITING, "False", FINISHED, "the restore run has ended"))
        fields: dict[str, Any] = {"waitingFor": None, "waitingSince": None}
    else:
        updates.append(Condition(RESTORE_WAITING, "True", waiting.reason, waiting.message))
        same = previous is not None and previous.get("status") == "True" and previous.get("reason") == waiting.reason
        since = current.get("waitingSince") if same and current.get("waitingSince") else rfc3339(now)
        fields = {"waitingFor": waiting.message, "waitingSince": since}
    fields["conditions"] = merge_conditions(conditions, updates, generation=generation, now=now)
    return fields


def run_started(run_id: str) -> Condition:
    return Condition(RESTORE_RUN_STARTED, "True", "RunTriggered", f"Airflow accepted run {run_id}")


def not_started(reason: str, message: str) -> tuple[Waiting, Condition]:
    """A restore whose run cannot start (yet): the wait, and RunStarted=False with the same reason."""
    return Waiting(reason, message), Condition(RESTORE_RUN_STARTED, "False", reason, message)
