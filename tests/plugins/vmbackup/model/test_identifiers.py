"""Snapshot names and lock values derived from a run: valid, bounded, deterministic, distinct."""

from __future__ import annotations

import re

from vmbackup.model import labels as vmlabels
from vmbackup.model.identifiers import (
    SNAPSHOT_NAME_PATTERN,
    lock_holder,
    lock_labels,
    lock_value,
    parse_lock,
    read_lock,
    run_hash,
    snapshot_name,
    without_lock,
)

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


LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")  # Compute Engine's label value rule


def test_a_lock_names_its_policy_and_run() -> None:
    labels = lock_labels("rabc", 60, lock_holder("policy", "team-a", "nightly", RUN), now=1000)
    lock = read_lock(labels)
    assert lock is not None
    assert (lock.run, lock.expires) == ("rabc", 1060)
    assert lock.holder() == "policy team-a/nightly run scheduled__2026-01-31t02-00-00-00-00"


def test_a_restores_lock_names_the_restore() -> None:
    lock = read_lock(lock_labels("rabc", 60, lock_holder("restore", "team-a", "db-back", RUN), now=1000))
    assert lock is not None
    assert lock.holder().startswith("restore team-a/db-back run ")


def test_every_lock_label_is_a_valid_label_value_for_the_longest_names() -> None:
    longest = "n" * 63
    run_id = "manual__2026-01-31T02:00:00.123456+00:00" + "x" * 40
    labels = lock_labels(run_hash(DAG, run_id), 86400 * 365, lock_holder("restore", longest, longest, run_id))
    assert all(LABEL_VALUE.fullmatch(value) for value in labels.values()), labels
    assert set(labels) <= set(vmlabels.LOCK_LABELS)


def test_an_older_lock_without_its_holder_is_still_a_lock() -> None:
    lock = read_lock({vmlabels.LOCK: "rother-2000000000"})
    assert lock is not None
    assert (lock.run, lock.expires) == ("rother", 2000000000)
    assert "does not name its policy" in lock.holder()


def test_removing_a_lock_removes_its_holder_labels_only() -> None:
    labels = {"app": "web", **lock_labels("rabc", 60, lock_holder("policy", "team-a", "nightly", RUN))}
    assert without_lock(labels) == {"app": "web"}
