"""Which snapshotType a run's cut takes: spec.snapshot.type, or ARCHIVE for the slot a GFS rung of
spec.snapshot.archiveRungs keeps.

A snapshot's type is chosen when it is created (snapshots.insert / disks.createSnapshot take snapshotType; the
Snapshot resource has no call that changes it, https://cloud.google.com/compute/docs/reference/rest/v1/snapshots),
while a GFS rung picks its snapshot at prune time: the newest of each period (model/retention_spec.py). So the cut
predicts it: the slot whose next slot (by spec.schedule, in spec.timezone) falls in another period is the last of
its period, the one the rung will keep if it succeeds. A run asked for by hand has no slot and cuts
spec.snapshot.type. When that last slot fails, the rung keeps an earlier STANDARD snapshot of the period: never
less kept, only a cheaper type missed.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from vmbackup.model.cron import cron_of
from vmbackup.model.retention_spec import RUNGS
from vmbackup.model.slots import CronSlots
from vmbackup.model.snapshot_settings import ARCHIVE_TYPE, SnapshotType

if TYPE_CHECKING:
    from vmbackup.model.policy import PolicySpec


def cut_type(spec: PolicySpec, slot: datetime | None) -> SnapshotType | None:
    """The snapshotType of the snapshots cut for `slot` (None: Compute Engine's default, STANDARD)."""
    settings = spec.snapshot
    if settings.archive_rungs and slot is not None and last_of_period(spec, slot, settings.archive_rungs):
        return ARCHIVE_TYPE
    return settings.type


def last_of_period(spec: PolicySpec, slot: datetime, rungs: Collection[str]) -> bool:
    """Whether `slot` is the schedule's last slot of its period for one of `rungs` (in spec.timezone)."""
    tz = ZoneInfo(spec.timezone)
    local = slot.astimezone(tz)
    following = CronSlots.parse(cron_of(spec.schedule)).next_after(local.replace(tzinfo=None))
    if following is None:
        return True  # no later slot: this one is the last of every period
    later = following.replace(tzinfo=tz)
    if later.astimezone(UTC) <= slot.astimezone(UTC):  # a wall time repeated when DST ends: not a later slot
        later = later.replace(fold=1)
    return any(r.bucket(local) != r.bucket(later) for r in RUNGS if r.field in rungs)
