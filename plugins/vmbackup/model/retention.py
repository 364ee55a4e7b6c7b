"""Retention: which of a policy's snapshots to delete. Pure selection here; the task does the deleting.

Only snapshots labelled as this policy's are ever considered. Per disk, a snapshot is kept when it is
among the newest `count` READY ones, or younger than `maxAgeDays`; the newest READY snapshot of a disk
is always kept; snapshots still CREATING/UPLOADING (or FAILED/DELETING) are never touched here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vmbackup.model.policy import Retention


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    disk: str  # the source disk (URL or zone/name): retention counts per disk
    status: str
    created: datetime


def parse_timestamp(text: str) -> datetime:
    """Compute Engine's creationTimestamp (RFC 3339 with offset) as an aware datetime."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def snapshots_to_delete(snapshots: list[SnapshotInfo], retention: Retention, now: datetime) -> list[SnapshotInfo]:
    by_disk: dict[str, list[SnapshotInfo]] = {}
    for snap in snapshots:
        by_disk.setdefault(snap.disk, []).append(snap)
    doomed: list[SnapshotInfo] = []
    for disk_snaps in by_disk.values():
        ready = sorted((s for s in disk_snaps if s.status == "READY"), key=lambda s: (s.created, s.name), reverse=True)
        if not ready:
            continue
        keep = {ready[0].name}  # never delete the newest successful snapshot of a disk
        if retention.count is not None:
            keep.update(s.name for s in ready[: retention.count])
        if retention.max_age_days is not None:
            cutoff = now - timedelta(days=retention.max_age_days)
            keep.update(s.name for s in ready if s.created > cutoff)
        doomed.extend(s for s in ready if s.name not in keep)
    return sorted(doomed, key=lambda s: s.name)
