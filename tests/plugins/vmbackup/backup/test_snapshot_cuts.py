"""The one place a VM's snapshots are cut, converted and cleaned up, against the simulator (no Airflow needed).

The VM stays RUNNING here with consistency none: these tests are about names, retries and what is deleted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from devstack.gce_simulator import ComputeSimulator, Profile
from vmbackup.airflow_compat import AirflowFailException
from vmbackup.backup.resolution import Target, resolve_targets
from vmbackup.backup.snapshot_cuts import (
    convert_instant_snapshots,
    cut_snapshots,
    cuts_made,
    remove_instant_snapshots,
)
from vmbackup.compute.hook import INSTANT, ComputeEngineHook, OperationRef
from vmbackup.model import labels as vmlabels
from vmbackup.model.policy import BackupPolicy, parse_policy

PROJECT = "demo-project"
RUN = "manual__2026-01-31T02:00:00+00:00"
ZONAL = "zones/us-central1-a"


@pytest.fixture
def hook(gce_sim: ComputeSimulator) -> ComputeEngineHook:
    return ComputeEngineHook(endpoint=gce_sim.base_url, backoff_base_seconds=0.001)


@pytest.fixture
def policy() -> BackupPolicy:
    spec = {
        "project": PROJECT,
        "instances": [{"name": "db-1", "zone": "us-central1-a"}],
        "consistency": "none",
        "snapshot": {"method": "instant"},
    }
    return parse_policy("team-a", "db", spec)


@pytest.fixture
def target(hook: ComputeEngineHook, policy: BackupPolicy) -> Target:
    (found,) = resolve_targets(policy, RUN, hook)["groups"]["instances"]
    return found


def wait_all(hook: ComputeEngineHook, items: list[dict[str, Any]]) -> None:
    for item in items:
        ref: OperationRef | None = item["operation"]
        if ref is not None:
            hook.wait_done(ref, 30)


def test_an_instant_cut_names_one_instant_snapshot_per_disk_after_its_snapshot(
    hook: ComputeEngineHook, policy: BackupPolicy, target: Target
) -> None:
    cuts = cut_snapshots(hook, policy, target, None)
    assert [(c["kind"], c["scope"], c["name"]) for c in cuts] == [
        (INSTANT, ZONAL, f"{d['snapshot']}-i") for d in target["disks"]
    ]
    assert [c["snapshot"] for c in cuts] == [d["snapshot"] for d in target["disks"]]


def test_a_retried_instant_cut_finds_its_own_instant_snapshots(
    hook: ComputeEngineHook, policy: BackupPolicy, target: Target, gce_sim: ComputeSimulator
) -> None:
    wait_all(hook, cut_snapshots(hook, policy, target, None))
    again = cut_snapshots(hook, policy, target, None)
    assert [c["operation"] for c in again] == [None, None]
    assert len(gce_sim.instant_snapshots(PROJECT)) == 2


def test_an_instant_snapshot_of_our_name_made_by_another_run_is_refused(
    hook: ComputeEngineHook, policy: BackupPolicy, target: Target
) -> None:
    wait_all(hook, cut_snapshots(hook, policy, target, None))
    other: Target = {**target, "run": "rsomeoneelse"}  # type: ignore[typeddict-item]
    with pytest.raises(AirflowFailException, match="was not made by this run"):
        cut_snapshots(hook, policy, other, None)


def test_instant_snapshots_are_deleted_once_their_standard_snapshots_are_made(
    hook: ComputeEngineHook, policy: BackupPolicy, target: Target, gce_sim: ComputeSimulator
) -> None:
    cuts = cut_snapshots(hook, policy, target, None)
    wait_all(hook, cuts)
    wait_all(hook, convert_instant_snapshots(hook, policy, target, cuts, None))
    done = remove_instant_snapshots(hook, policy, target)
    assert sorted(done["deleted"]) == sorted(c["name"] for c in cuts)
    assert gce_sim.instant_snapshots(PROJECT) == []
    snapshots = {s["name"]: s for s in gce_sim.snapshots(PROJECT)}
    assert all(snapshots[c["snapshot"]]["status"] == "READY" for c in cuts)


def test_an_instant_snapshot_a_conversion_still_reads_is_kept(
    hook: ComputeEngineHook, policy: BackupPolicy, target: Target, gce_sim: ComputeSimulator
) -> None:
    gce_sim.set_profile(Profile.fast(snapshot_upload_base_seconds=30.0))
    cuts = cut_snapshots(hook, policy, target, None)
    wait_all(hook, cuts)
    convert_instant_snapshots(hook, policy, target, cuts, None)
    done = remove_instant_snapshots(hook, policy, target)
    assert (done["deleted"], sorted(done["kept"])) == ([], sorted(c["name"] for c in cuts))
    assert len(gce_sim.instant_snapshots(PROJECT)) == 2


def test_an_instant_snapshot_of_our_name_without_our_labels_is_never_deleted(
    hook: ComputeEngineHook, target: Target, gce_sim: ComputeSimulator
) -> None:
    disk = target["disks"][0]
    ref = hook.insert_instant_snapshot(
        PROJECT, ZONAL, disk["name"], f"{disk['snapshot']}-i", labels={vmlabels.RUN: target["run"]}
    )
    assert ref is not None
    hook.wait_done(ref, 30)
    someone = parse_policy(
        "team-b", "db", {"project": PROJECT, "instances": [{"name": "db-1", "zone": "us-central1-a"}]}
    )
    assert remove_instant_snapshots(hook, someone, target) == {"deleted": [], "kept": []}
    assert len(gce_sim.instant_snapshots(PROJECT)) == 1


# -- a backup project, and the monthly rung's slot cut as ARCHIVE -------------------------------------------------

BACKUPS = "demo-backups"


@pytest.fixture
def vault() -> BackupPolicy:
    spec = {
        "project": PROJECT,
        "instances": [{"name": "db-1", "zone": "us-central1-a"}],
        "consistency": "none",
        "timezone": "Europe/Berlin",
        "retention": {"daily": 7, "monthly": 12},
        "snapshot": {"project": BACKUPS, "archiveRungs": ["monthly"], "storageLocation": "eu"},
    }
    return parse_policy("team-a", "vault", spec)


def cut_into_backups(hook: ComputeEngineHook, vault: BackupPolicy, slot: datetime) -> list[dict[str, Any]]:
    (found,) = resolve_targets(vault, RUN, hook)["groups"]["instances"]
    cuts = cut_snapshots(hook, vault, found, slot)
    wait_all(hook, cuts)
    return cuts


def test_the_last_slot_of_the_month_is_cut_as_archive_into_the_backup_project(
    hook: ComputeEngineHook, vault: BackupPolicy, gce_sim: ComputeSimulator
) -> None:
    cuts = cut_into_backups(hook, vault, datetime(2026, 1, 31, 1, 0, tzinfo=UTC))  # 02:00 in Berlin
    assert {c["project"] for c in cuts} == {BACKUPS}
    made = gce_sim.snapshots(BACKUPS)
    assert [(s["snapshotType"], s["storageLocations"]) for s in made] == [("ARCHIVE", ["eu"])] * 2
    assert gce_sim.snapshots(PROJECT) == []


def test_a_slot_inside_the_month_is_cut_as_standard(
    hook: ComputeEngineHook, vault: BackupPolicy, gce_sim: ComputeSimulator
) -> None:
    cut_into_backups(hook, vault, datetime(2026, 1, 30, 1, 0, tzinfo=UTC))
    assert [s["snapshotType"] for s in gce_sim.snapshots(BACKUPS)] == ["STANDARD"] * 2


def test_a_cut_in_the_backup_project_reads_back_its_own_snapshots_on_a_retry(
    hook: ComputeEngineHook, vault: BackupPolicy
) -> None:
    cut_into_backups(hook, vault, datetime(2026, 1, 30, 1, 0, tzinfo=UTC))
    (found,) = resolve_targets(vault, RUN, hook)["groups"]["instances"]
    assert [(c["project"], c["operation"]) for c in cuts_made(hook, vault, found) or []] == [(BACKUPS, None)] * 2
