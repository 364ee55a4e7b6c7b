"""Snapshot names and lock values derived from a run: valid, bounded, deterministic, distinct."""

from __future__ import annotations

from vmbackup.model.identifiers import SNAPSHOT_NAME_PATTERN, lock_value, parse_lock, run_hash, snapshot_name

DAG = "vmbackup__team-a__wordpress"
RUN = "scheduled__2026-01-31T02:00:00+00:00"


def test_snapshot_name_is_a_valid_compute_engine_name_even_for_the_longest_disk() -> None:
    name = snapshot_name(DAG, RUN, "demo-project", "us-central1-c", "d" + "-x" * 31)
    assert len(name) <= 63
    assert SNAPSHOT_NAME_PATTERN.fullmatch(name)


def test_snapshot_name_is_the_same_on_every_retry() -> None:
    assert snapshot_name(DAG, RUN, "p-123456", "us-central1-c", "disk") == snapshot_name(
        DAG, RUN, "p-123456", "us-central1-c", "disk"
    )


def test_snapshot_names_differ_per_run_disk_and_zone() -> None:
    names = {
        snapshot_name(DAG, RUN, "p-123456", "us-central1-c", "disk"),
        snapshot_name(DAG, RUN + "x", "p-123456", "us-central1-c", "disk"),
        snapshot_name(DAG, RUN, "p-123456", "us-central1-b", "disk"),
        snapshot_name(DAG, RUN, "p-123456", "us-central1-c", "disk2"),
    }
    assert len(names) == 4


def test_run_hash_is_a_valid_label_value() -> None:
    value = run_hash(DAG, RUN)
    assert value.isalnum()
    assert value.islower()
    assert len(value) <= 63


def test_lock_value_round_trips() -> None:
    assert parse_lock(lock_value("rabc", 60, now=1000)) == ("rabc", 1060)


def test_unreadable_lock_is_ignored() -> None:
    assert parse_lock("garbage") is None
    assert parse_lock("") is None
