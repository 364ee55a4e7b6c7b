"""Status conditions (metav1.Condition shape) and the "patch only what changed" rule.

Pure functions: the handlers compute the conditions they mean, this module merges them into what the
object already has so lastTransitionTime moves only when a condition's status really flips, and
tells whether anything changed at all (an unchanged status is never patched: no API write, no
watch event, no reconcile loop).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, overload

ConditionStatus = Literal["True", "False", "Unknown"]

# The contract's condition types, in the order they are shown. Each has one owner: Ready and Suspended are
# decided by controller/status.py, the others by what Airflow says (controller/run_status.py).
READY = "Ready"
LAST_BACKUP_SUCCEEDED = "LastBackupSucceeded"
SUSPENDED = "Suspended"
DAG_IMPORT_ERROR = "DagImportError"
AIRFLOW_REACHABLE = "AirflowReachable"
RESTORE_VERIFIED = "RestoreVerified"  # restore drills (controller/drills.py); shown after the contract's types
SCHEDULE_ON_TIME = "ScheduleOnTime"  # True when the latest slot ran; False (reason Missed*) when it was skipped
RPO_MET = "RecoveryPointObjectiveMet"  # with spec.rpo only (controller/recovery_point.py); shown after the contract's
CONDITION_ORDER = (READY, LAST_BACKUP_SUCCEEDED, SCHEDULE_ON_TIME, SUSPENDED, DAG_IMPORT_ERROR, AIRFLOW_REACHABLE)


@dataclasses.dataclass(frozen=True)
class Condition:
    """What a condition should say now; the merge decides its lastTransitionTime."""

    type: str
    status: ConditionStatus
    reason: str
    message: str = ""


@overload
def rfc3339(moment: datetime) -> str: ...
@overload
def rfc3339(moment: None) -> None: ...
def rfc3339(moment: datetime | None) -> str | None:
    """A status timestamp as Kubernetes writes them (UTC, whole seconds); None stays None."""
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_conditions(
    existing: Iterable[Mapping[str, Any]] | None,
    updates: Iterable[Condition],
    *,
    generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """The object's conditions with ``updates`` applied; untouched types are kept as they are."""
    merged: dict[str, dict[str, Any]] = {str(c.get("type")): dict(c) for c in existing or () if c.get("type")}
    for update in updates:
        previous = merged.get(update.type)
        flipped = previous is None or previous.get("status") != update.status
        since = rfc3339(now) if previous is None or flipped else previous.get("lastTransitionTime", rfc3339(now))
        merged[update.type] = {
            "type": update.type,
            "status": update.status,
            "reason": update.reason,
            "message": update.message,
            "lastTransitionTime": since,
            "observedGeneration": generation,
        }
    known = [merged.pop(t) for t in CONDITION_ORDER if t in merged]
    return known + [merged[t] for t in sorted(merged)]


def find_condition(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions or () if c.get("type") == type_), None)


def changed_fields(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level status fields whose value differs; a None value removes the field."""
    current = current or {}
    return {
        key: value
        for key, value in desired.items()
        if (value is None and key in current and current[key] is not None)
        or (value is not None and current.get(key) != value)
    }


# True while a VM of the policy that this product stopped waits to be started again by the keeper
# (controller/keeper.py); False once none waits; Unknown when the keeper's report is stale or missing the project.
VM_LEFT_STOPPED = "VMLeftStopped"

# VMRestore conditions (controller/restore_progress.py): RunStarted is True once Airflow accepted the restore's run,
# False (with the reason) while it cannot start; Waiting is True while the restore waits, its reason and message
# saying for what, and False once the run has ended.
RESTORE_RUN_STARTED = "RunStarted"
RESTORE_WAITING = "Waiting"
