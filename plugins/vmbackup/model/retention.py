"""Retention: which of a policy's snapshots to keep and why. Pure selection here; the prune step deletes, and
``vmbackupctl retention`` prints the same verdicts before anything is deleted.

Only snapshots labelled as this policy's are ever given here. A snapshot is kept when any rule keeps it; its verdict
names the first that does, in this order: count, maxAgeDays, hourly, daily, weekly, monthly, yearly (the policy's
rules), then the guards keepLastSuccessful (the newest N complete runs of each VM) and newestOfDisk (the newest
READY snapshot of each disk). Snapshots still CREATING/UPLOADING (or FAILED/DELETING) are never deleted here, nor
one created after the time of evaluation. docs/retention.md defines the periods and has a worked example.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from vmbackup.model.retention_spec import Retention, Rung

READY = "READY"
LAST_SUCCESSFUL = "keepLastSuccessful"
NEWEST_OF_DISK = "newestOfDisk"
NOT_READY = "notReady"  # kept: not READY yet (or failed); never deleted by retention
NOT_YET = "createdAfterEvaluation"  # kept: did not exist yet at the time of evaluation (vmbackupctl --at)
EXPIRED = "noRuleKeepsIt"  # deleted


RunTimes = dict[tuple[str, str], datetime]  # (VM, run) -> when the run began for the VM


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    disk: str  # the source disk (URL or zone/name): count, age and GFS rungs count per disk
    status: str
    created: datetime
    instance: str = ""  # the VM it backs up (vmbackup-instance label): keepLastSuccessful counts per VM
    run: str = ""  # the backup run that made it (vmbackup-run label)
    # The names of the disks its run meant to snapshot of the VM (from the backup record); empty when not recorded.
    expected_disks: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Verdict:
    """One snapshot's fate: kept or deleted, the rule that decided, and (GFS) the period it stands for."""

    snapshot: SnapshotInfo
    keep: bool
    rule: str
    period: str = ""


def parse_timestamp(text: str) -> datetime:
    """Compute Engine's creationTimestamp (RFC 3339 with offset) as an aware datetime."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def retention_verdicts(
    snapshots: Iterable[SnapshotInfo], retention: Retention, now: datetime, timezone: str = "Etc/UTC"
) -> list[Verdict]:
    """Every snapshot's verdict at `now`, newest first; GFS periods are calendar periods in `timezone`."""
    every = list(snapshots)
    present = [s for s in every if s.created <= now]
    run_times = _run_times(present)
    wants = _Wants()
    by_disk: dict[str, list[SnapshotInfo]] = {}
    for snap in present:
        if snap.status == READY:
            by_disk.setdefault(snap.disk, []).append(snap)
    for ready in by_disk.values():
        ready.sort(key=lambda s: (s.created, s.name), reverse=True)
        _policy_rules(ready, retention, now, zoneinfo.ZoneInfo(timezone), run_times, wants)
    for snap in _last_successful(present, retention.last_successful, run_times):
        wants.add(snap, LAST_SUCCESSFUL)
    for ready in by_disk.values():
        wants.add(ready[0], NEWEST_OF_DISK)
    verdicts = [_verdict(s, now, wants) for s in every]
    return sorted(verdicts, key=lambda v: (v.snapshot.created, v.snapshot.name), reverse=True)


def snapshots_to_delete(
    snapshots: list[SnapshotInfo], retention: Retention, now: datetime, timezone: str = "Etc/UTC"
) -> list[SnapshotInfo]:
    """The snapshots retention deletes at `now`, by name."""
    doomed = [v.snapshot for v in retention_verdicts(snapshots, retention, now, timezone) if not v.keep]
    return sorted(doomed, key=lambda s: s.name)


class _Wants:
    """Which rule first wants each snapshot (and the period, for a GFS rung)."""

    def __init__(self) -> None:
        self.by_name: dict[str, tuple[str, str]] = {}

    def add(self, snap: SnapshotInfo, rule: str, period: str = "") -> None:
        self.by_name.setdefault(snap.name, (rule, period))


def _policy_rules(
    ready: list[SnapshotInfo],
    retention: Retention,
    now: datetime,
    tz: zoneinfo.ZoneInfo,
    run_times: RunTimes,
    wants: _Wants,
) -> None:
    """count, maxAgeDays and the GFS rungs over one disk's READY snapshots (newest first)."""
    if retention.count is not None:
        for snap in ready[: retention.count]:
            wants.add(snap, "count")
    if retention.max_age_days is not None:
        cutoff = now - timedelta(days=retention.max_age_days)
        for snap in ready:
            if snap.created > cutoff:
                wants.add(snap, "maxAgeDays")
    if not retention.rungs():
        return
    by_run_time = sorted(ready, key=lambda s: (_run_time(s, run_times), s.name), reverse=True)
    for rung, count in retention.rungs():
        for snap, period in _rung_keeps(by_run_time, rung, count, tz, run_times):
            wants.add(snap, rung.field, period)


def _rung_keeps(
    newest_first: list[SnapshotInfo], rung: Rung, count: int, tz: zoneinfo.ZoneInfo, run_times: RunTimes
) -> list[tuple[SnapshotInfo, str]]:
    """The newest snapshot of each of the newest `count` periods that hold one (restic's --keep-daily reading)."""
    seen: set[tuple[object, ...]] = set()
    kept: list[tuple[SnapshotInfo, str]] = []
    for snap in newest_first:
        local = _run_time(snap, run_times).astimezone(tz)
        bucket = rung.bucket(local)
        if bucket in seen:
            continue
        if len(seen) == count:
            break
        seen.add(bucket)
        kept.append((snap, local.strftime(rung.shown)))
    return kept


def _run_times(snapshots: list[SnapshotInfo]) -> RunTimes:
    """When each run of each VM began: its first snapshot's creation. All disks of one run share it, so a run that
    straddles midnight counts for one day on every disk."""
    times: RunTimes = {}
    for snap in snapshots:
        if snap.run:
            key = (_vm(snap), snap.run)
            times[key] = min(times.get(key, snap.created), snap.created)
    return times


def _run_time(snap: SnapshotInfo, run_times: RunTimes) -> datetime:
    return run_times.get((_vm(snap), snap.run), snap.created) if snap.run else snap.created


def _vm(snap: SnapshotInfo) -> str:
    return snap.instance or snap.disk


def _last_successful(snapshots: list[SnapshotInfo], count: int, run_times: RunTimes) -> list[SnapshotInfo]:
    """Every snapshot of the newest `count` complete runs of each VM: each snapshot of the run READY, and each disk
    the run meant to snapshot (as its backup record says) among them."""
    runs: dict[tuple[str, str], list[SnapshotInfo]] = {}
    for snap in snapshots:
        if snap.run:
            runs.setdefault((_vm(snap), snap.run), []).append(snap)
    complete_by_vm: dict[str, list[tuple[str, str]]] = {}
    for key, members in runs.items():
        if _complete(members):
            complete_by_vm.setdefault(key[0], []).append(key)
    kept: list[SnapshotInfo] = []
    for keys in complete_by_vm.values():
        keys.sort(key=lambda k: (run_times[k], k[1]), reverse=True)
        for key in keys[:count]:
            kept += runs[key]
    return kept


def _complete(members: list[SnapshotInfo]) -> bool:
    if any(s.status != READY for s in members):
        return False
    expected = frozenset().union(*(s.expected_disks for s in members))
    return expected <= {s.disk.rstrip("/").rsplit("/", 1)[-1] for s in members}


def _verdict(snap: SnapshotInfo, now: datetime, wants: _Wants) -> Verdict:
    if snap.created > now:
        return Verdict(snap, True, NOT_YET)
    if snap.status != READY:
        return Verdict(snap, True, NOT_READY, snap.status)
    if snap.name in wants.by_name:
        rule, period = wants.by_name[snap.name]
        return Verdict(snap, True, rule, period)
    return Verdict(snap, False, EXPIRED)
