"""The first step of a scheduled run: may this slot still touch a VM?

Checked inside the run, when its first task starts, because only the run knows how late Airflow started it:
a controller that was down, Composer's bucket sync or a scheduler outage all end in a run that starts long
after its slot (with catchup off, Airflow's CronTriggerTimetable runs the latest past slot as soon as it
can). A slot is missed, and no VM touched, when the run starts later than slot + startingDeadlineSeconds,
outside the maintenance window, or when snapshots labelled with the slot already exist (another Airflow, e.g.
a new Composer environment or a restored metadata DB, already backed it up). A run asked for by hand
(backup-now, Airflow's "manual" run type) is the owner's explicit intent and is never held back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.model import labels as vmlabels
from vmbackup.model.policy import BackupPolicy
from vmbackup.model.report import MissedSlot

SCHEDULED = "scheduled"  # Airflow's DagRunType.SCHEDULED


def scheduled_slot(context: Any) -> datetime | None:
    """The slot of a scheduled run (its logical date, in UTC); None for a run asked for by hand."""
    dag_run = context.get("dag_run")
    run_type = getattr(dag_run, "run_type", None)
    if str(getattr(run_type, "value", run_type)) != SCHEDULED:
        return None
    slot = context.get("logical_date") or getattr(dag_run, "logical_date", None)
    if slot is None:
        return None
    return datetime.fromtimestamp(slot.timestamp(), UTC)


def slot_label(slot: datetime) -> str:
    """The slot as a label value ([-_a-z0-9]{0,63}), e.g. 20261125t0200z."""
    return slot.astimezone(UTC).strftime("%Y%m%dt%H%Mz")


def missed_slot(policy: BackupPolicy, slot: datetime, now: datetime, hook: ComputeEngineHook) -> MissedSlot | None:
    """Why this slot must touch no VM, or None when the run may go on (only reads Compute Engine)."""
    late = too_late(policy, slot, now)
    if late is not None:
        return late
    spec = policy.spec
    taken = hook.list_snapshots(
        spec.snapshot_project,
        {
            vmlabels.MANAGED_BY: vmlabels.MANAGED_BY_VALUE,
            vmlabels.POLICY_NAMESPACE: policy.namespace,
            vmlabels.POLICY_NAME: policy.name,
            vmlabels.SLOT: slot_label(slot),
        },
    )
    kept = sorted(s.name for s in taken if s.status != "FAILED")
    if kept:
        return MissedSlot(
            slot=slot,
            reason="AlreadyBackedUp",
            message=f"this slot was already backed up ({', '.join(kept[:5])}{' ...' if len(kept) > 5 else ''}), "
            "e.g. by another Airflow; no VM was touched",
        )
    return None


def too_late(policy: BackupPolicy, slot: datetime, now: datetime) -> MissedSlot | None:
    """Why no VM may be stopped for this slot any more (past the starting deadline, outside the window), or None.

    Asked when the run starts, and again by a stop step that waited for another run's lock: a wait never carries
    a stop past the deadline or out of the window.
    """
    spec = policy.spec
    late = (now - slot).total_seconds()
    deadline = spec.effective_starting_deadline
    if deadline is not None and late > deadline:
        return MissedSlot(
            slot=slot,
            reason="Late",
            message=f"the run started at {_utc(now)}, {late:.0f} s after its slot, later than "
            f"spec.startingDeadlineSeconds ({deadline} s{' by default in stop mode' if spec.starting_deadline_seconds is None else ''}); "
            "no VM was touched; raise the deadline if a late backup is acceptable",
        )
    window = spec.maintenance_window
    local = now.astimezone(ZoneInfo(spec.timezone))
    if window is not None and not window.window().contains(local):
        return MissedSlot(
            slot=slot,
            reason="OutsideWindow",
            message=f"the run started at {local:%H:%M} {spec.timezone}, outside spec.maintenanceWindow "
            f"({window.window()}); no VM was touched",
        )
    return None


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
