"""Retention selection: per disk, newest N and/or younger than an age; the newest READY one always stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vmbackup.model.policy import Retention
from vmbackup.model.retention import SnapshotInfo, parse_timestamp, snapshots_to_delete

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


def snap(name: str, days_old: float, disk: str = "zones/z/disks/d", status: str = "READY") -> SnapshotInfo:
    return SnapshotInfo(name=name, disk=disk, status=status, created=NOW - timedelta(days=days_old))


def doomed(snaps: list[SnapshotInfo], **retention: int) -> list[str]:
    return [s.name for s in snapshots_to_delete(snaps, Retention(**retention), NOW)]  # type: ignore[arg-type]


def test_count_keeps_the_newest_n() -> None:
    assert doomed([snap("a", 3), snap("b", 2), snap("c", 1)], count=2) == ["a"]


def test_age_deletes_older_snapshots() -> None:
    assert doomed([snap("old", 10), snap("new", 1)], max_age_days=7) == ["old"]


def test_count_and_age_keep_what_either_keeps() -> None:
    snaps = [snap("a", 20), snap("b", 15), snap("c", 5), snap("d", 1)]
    assert doomed(snaps, count=1, max_age_days=7) == ["a", "b"]


def test_newest_ready_snapshot_survives_any_age() -> None:
    assert doomed([snap("ancient", 400), snap("older", 500)], max_age_days=30) == ["older"]


def test_unfinished_or_failed_snapshots_are_never_deleted() -> None:
    snaps = [snap("up", 90, status="UPLOADING"), snap("bad", 90, status="FAILED"), snap("ok", 1)]
    assert doomed(snaps, max_age_days=7) == []


def test_count_does_not_include_unfinished_snapshots() -> None:
    snaps = [snap("a", 3), snap("b", 2), snap("c", 1, status="CREATING")]
    assert doomed(snaps, count=2) == []


def test_disks_are_counted_separately() -> None:
    snaps = [snap("a1", 2, disk="d1"), snap("a2", 1, disk="d1"), snap("b1", 5, disk="d2")]
    assert doomed(snaps, count=1) == ["a1"]


def test_compute_engine_timestamps_parse_with_offsets() -> None:
    assert parse_timestamp("2026-01-31T04:00:00.000-08:00") == datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    assert parse_timestamp("2026-01-31T12:00:00Z") == NOW
