"""keepLastSuccessful: the newest N complete runs of each VM stay whatever their age, so failing runs cannot expire
the last good backup; and the rules of before (count, maxAgeDays) decide as they did for policies without rungs."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from vmbackup.model.retention import SnapshotInfo, retention_verdicts, snapshots_to_delete
from vmbackup.model.retention_spec import Retention

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
BOTH = frozenset({"db", "db-data"})


def run(name: str, days_old: float, failed: tuple[str, ...] = (), missing: tuple[str, ...] = ()) -> list[SnapshotInfo]:
    """One run of VM db: a snapshot per disk (FAILED where said, absent where missing), recording both disks."""
    return [
        SnapshotInfo(
            name=f"{disk}-{name}",
            disk=f"zones/z/disks/{disk}",
            status="FAILED" if disk in failed else "READY",
            created=NOW - timedelta(days=days_old),
            instance="db",
            run=name,
            expected_disks=BOTH,
        )
        for disk in sorted(BOTH)
        if disk not in missing
    ]


def doomed(snaps: list[SnapshotInfo], **rules: int) -> set[str]:
    return {s.name for s in snapshots_to_delete(snaps, Retention(**rules), NOW)}  # type: ignore[arg-type]


HISTORY = run("good", 30) + run("bad1", 20, failed=("db-data",)) + run("bad2", 10, failed=("db-data",))


def test_runs_with_a_failed_snapshot_cannot_expire_the_last_complete_run() -> None:
    assert doomed(HISTORY, maxAgeDays=7) == {"db-bad1"}  # db-bad2 is the disk's newest; good is the last good run


def test_a_run_missing_a_recorded_disk_is_not_complete() -> None:
    snaps = run("good", 30) + run("partial", 10, missing=("db-data",))
    assert doomed(snaps, maxAgeDays=7) == set()


def test_keep_last_successful_counts_complete_runs_per_vm() -> None:
    snaps = run("r1", 40) + run("r2", 30) + run("r3", 20) + run("bad", 10, failed=("db",))
    assert doomed(snaps, maxAgeDays=7, keepLastSuccessful=2) == {"db-r1", "db-data-r1"}


def test_the_guard_is_named_when_it_alone_keeps_a_snapshot() -> None:
    found = {v.snapshot.name: v.rule for v in retention_verdicts(HISTORY, Retention(maxAgeDays=7), NOW)}
    assert found["db-good"] == found["db-data-good"] == "keepLastSuccessful"
    assert found["db-bad2"] == "newestOfDisk"
    assert found["db-data-bad1"] == "notReady"


def _before(snapshots: list[SnapshotInfo], count: int | None, max_age_days: int | None) -> set[str]:
    """The selection as it was before GFS (kept verbatim as the oracle): per disk, newest N and/or younger than an
    age, the newest READY always."""
    by_disk: dict[str, list[SnapshotInfo]] = {}
    for snap in snapshots:
        by_disk.setdefault(snap.disk, []).append(snap)
    out: set[str] = set()
    for disk_snaps in by_disk.values():
        ready = sorted((s for s in disk_snaps if s.status == "READY"), key=lambda s: (s.created, s.name), reverse=True)
        if not ready:
            continue
        keep = {ready[0].name}
        if count is not None:
            keep.update(s.name for s in ready[:count])
        if max_age_days is not None:
            keep.update(s.name for s in ready if s.created > NOW - timedelta(days=max_age_days))
        out.update(s.name for s in ready if s.name not in keep)
    return out


def test_count_and_age_decide_as_before_for_runs_that_all_completed() -> None:
    rng = random.Random(21)
    for _ in range(200):
        snaps = []
        for index in range(rng.randint(1, 30)):
            days, disks = rng.uniform(0, 60), rng.sample(["a", "b", "c"], rng.randint(1, 3))
            status = rng.choice(["READY"] * 8 + ["UPLOADING"])
            snaps += [
                SnapshotInfo(
                    f"{d}-{index}", f"zones/z/disks/{d}", status, NOW - timedelta(days=days), "vm", f"r{index}"
                )
                for d in disks
            ]
        count, age = rng.choice([None, 1, 3, 7]), rng.choice([None, 1, 7, 30])
        if count is None and age is None:
            count = 7
        latest_complete = max(
            (i for i in range(len(snaps)) if all(s.status == "READY" for s in snaps if s.run == f"r{i}")),
            key=lambda i: min((s.created for s in snaps if s.run == f"r{i}"), default=NOW - timedelta(days=999)),
            default=None,
        )
        guarded = {s.name for s in snaps if s.run == f"r{latest_complete}"}
        assert doomed(snaps, count=count, maxAgeDays=age) == _before(snaps, count, age) - guarded  # type: ignore[arg-type]
