"""What a run's batch steps recorded of each VM, as the steps after them (the safety net, the report) read it.

A batch step pushes its per-VM records (down_window.VmWindow) under WINDOW_KEY, also when it fails; the READY wait
pushes the states it saw. Read once here, so the steps after the windows ask Compute Engine only about what the
records leave open (calls count against the project's rate quotas).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vmbackup.airflow_compat import xcom_values
from vmbackup.backup import steps
from vmbackup.backup.batch_operators import WINDOW_KEY
from vmbackup.backup.resolution import Resolution, Target

VmKey = tuple[str, str]  # (instance, zone)


def vm_key_of(target: Target | dict[str, Any]) -> VmKey:
    return (target["instance"], target["zone"])


def step_records(ti: Any, task_id: str, indexes: list[int]) -> dict[VmKey, dict[str, Any]]:
    """The per-VM records a batch step left (also when it failed), by (instance, zone)."""
    return {
        (vm["instance"], vm["zone"]): vm
        for value in xcom_values(ti, task_id, indexes, key=WINDOW_KEY)
        for vm in (value or {}).get("vms") or []
    }


@dataclass(frozen=True)
class GroupRecords:
    """One tier's (or the only group's) records: each present step's per-VM records, and the READY wait's states."""

    group: str
    indexes: list[int]
    windows: dict[str, dict[VmKey, dict[str, Any]]]  # task id -> VM -> record
    ready_states: dict[str, str]  # snapshot name -> state, from the READY waits that ended

    def down(self, target: Target) -> dict[str, Any] | None:
        """The record of the VM going down and its cut (the full window, the DOWN phase, or the cut alone)."""
        return self._first(target, (steps.DOWN_WINDOW, steps.GO_DOWN, steps.SNAPSHOT))

    def up(self, target: Target) -> dict[str, Any] | None:
        """The record of the VM coming up (the UP phase, or the full window)."""
        return self._first(target, (steps.COME_UP, steps.DOWN_WINDOW))

    def _first(self, target: Target, step_ids: tuple[str, ...]) -> dict[str, Any] | None:
        key = vm_key_of(target)
        for step in step_ids:
            found = self.windows.get(steps.in_group(self.group, step), {}).get(key)
            if found is not None:
                return found
        return None


def group_records(ti: Any, existing_task_ids: set[str], resolution: Resolution, key: str, group: str) -> GroupRecords:
    """The records of the group `group` (task group id) that holds the resolution's group `key`."""
    batches: dict[str, Any] = dict(resolution.get("batches") or {})
    indexes = list(range(len(batches[key]) if key in batches else len(resolution["groups"][key])))
    present = [steps.in_group(group, s) for s in steps.GROUP_STEPS if steps.in_group(group, s) in existing_task_ids]
    ready = {
        name: str(state)
        for done in xcom_values(ti, steps.in_group(group, steps.WAIT_READY), indexes)
        for name, state in ((done or {}).get("states") or {}).items()
    }
    return GroupRecords(
        group=group,
        indexes=indexes,
        windows={task_id: step_records(ti, task_id, indexes) for task_id in present},
        ready_states=ready,
    )


def came_up(record: dict[str, Any] | None) -> bool:
    """The window gave the VM back as it began (started and released, or never ours) and recorded no error."""
    return bool(record and record.get("up") and not record.get("error"))
