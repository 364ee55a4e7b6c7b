"""spec.snapshot.method instant end to end: rendered DAGs run with dag.test() on real Airflow against the simulator.

Same harness as test_dag_run.py (one module-scoped run per scenario, several tests asserting on it): the VM is
down only until its instant snapshots are READY, standard snapshots are made from them while it runs, and no
instant snapshot is left, on success and on failure alike.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from google.cloud import compute_v1

from devstack.gce_simulator import ComputeSimulator, Fault, Profile, compute_client
from tests.plugins.vmbackup.backup.test_dag_run import HA, PROJECT, WORDPRESS, BackupRun, backup, seed_regional_vm
from vmbackup.model import labels as vmlabels

pytestmark = pytest.mark.airflow

__all__ = ["backup"]  # the harness's module-scoped fixture, used here as in test_dag_run.py

INSTANT = {"snapshot": {"method": "instant", "labels": {"team": "blog"}}}
VM = "wordpress-1-vm"
ZONE = "us-central1-c"
# Uploads take seconds, so the VM demonstrably runs again before its standard snapshot is READY.
UPLOADING = Profile.fast(snapshot_upload_base_seconds=2.0, instant_snapshot_creating_seconds=0.3)


def ops_on(run: BackupRun, collection: str, operation_type: str) -> list[dict[str, Any]]:
    return [
        op
        for op in run.operations
        if f"/{collection}/" in op["targetLink"] and op["operationType"] == operation_type and "error" not in op
    ]


def seconds(op: dict[str, Any], key: str) -> float:
    return datetime.fromisoformat(op[key]).timestamp()


def seed_instant_snapshot(sim: ComputeSimulator, name: str, disk: str, labels: dict[str, str]) -> None:
    """An instant snapshot of a disk in us-central1-c made through the API, as another tool (or run) would."""
    client = compute_client(compute_v1.InstantSnapshotsClient, sim.base_url)
    ops = compute_client(compute_v1.ZoneOperationsClient, sim.base_url)
    source = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/zones/{ZONE}/disks/{disk}"
    resource = compute_v1.InstantSnapshot(name=name, source_disk=source, labels=labels)
    op = client.insert_unary(project=PROJECT, zone=ZONE, instant_snapshot_resource=resource)
    ops.wait(project=PROJECT, zone=ZONE, operation=op.name)


# -- one VM, instant method -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def instant(backup: Callable[..., BackupRun]) -> BackupRun:
    return backup("instant", {**WORDPRESS, **INSTANT}, profile=UPLOADING)


def test_an_instant_backup_succeeds(instant: BackupRun) -> None:
    assert instant.state == "success", instant.task_states
    assert instant.violations == []
    assert instant.left_in_wrong_state == []
    assert instant.statuses[VM] == "RUNNING"


def test_the_vm_is_down_only_until_its_instant_snapshot_is_ready(instant: BackupRun) -> None:
    (cut,) = ops_on(instant, "instantSnapshots", "insert")
    (converted,) = ops_on(instant, "snapshots", "insert")
    start_called = instant.operation_times("start", "insertTime")[VM]
    assert seconds(cut, "endTime") <= start_called < seconds(converted, "endTime")


def test_the_standard_snapshot_is_made_from_the_instant_one_and_is_ready(instant: BackupRun) -> None:
    (snap,) = instant.ours()
    assert snap["status"] == "READY"
    assert snap["sourceInstantSnapshot"].endswith(f"/zones/{ZONE}/instantSnapshots/{snap['name']}-i")
    assert instant.calls_of("disks.createSnapshot") == []


def test_the_standard_snapshot_carries_the_labels_of_a_standard_backup(instant: BackupRun) -> None:
    (snap,) = instant.ours()
    labels = snap["labels"]
    assert labels[vmlabels.CONSISTENCY] == "stop"
    assert labels[vmlabels.INSTANCE] == VM
    assert labels[vmlabels.RUN]
    assert labels["team"] == "blog"


def test_no_instant_snapshot_is_left(instant: BackupRun) -> None:
    assert instant.instant_snapshots == []
    assert len(instant.calls_of("instantSnapshots.delete")) == 1


def test_the_report_says_the_disk_was_cut_by_an_instant_snapshot(instant: BackupRun) -> None:
    (disk,) = instant.instance_report(VM).disks
    assert (disk.state, disk.method, disk.note) == ("READY", "instant", None)


# -- regional disks, instant method ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def regional_instant(backup: Callable[..., BackupRun]) -> BackupRun:
    return backup("regionalinstant", {**HA, **INSTANT}, seed_regional_vm)


def test_a_regional_disk_gets_a_regional_instant_snapshot(regional_instant: BackupRun) -> None:
    assert regional_instant.state == "success", regional_instant.task_states
    assert [c["params"]["region"] for c in regional_instant.calls_of("regionInstantSnapshots.insert")] == [
        "us-central1"
    ]
    assert len(regional_instant.calls_of("instantSnapshots.insert")) == 1  # the zonal boot disk


def test_both_disks_end_with_a_ready_standard_snapshot_and_no_instant_one(regional_instant: BackupRun) -> None:
    disks = sorted(s["sourceDisk"].split("/projects/", 1)[1] for s in regional_instant.ours())
    assert disks == [f"{PROJECT}/regions/us-central1/disks/ha-shared", f"{PROJECT}/zones/us-central1-a/disks/ha-1"]
    assert all(s["status"] == "READY" and s["sourceInstantSnapshot"] for s in regional_instant.ours())
    assert regional_instant.instant_snapshots == []
    assert regional_instant.violations == []


# -- the conversion fails --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def conversion_fails(backup: Callable[..., BackupRun]) -> BackupRun:
    fault = Fault.operation_error("snapshots.insert", "QUOTA_EXCEEDED", "Quota 'SNAPSHOTS' exceeded.", times=None)
    return backup("convertfail", {**WORDPRESS, **INSTANT}, lambda sim: sim.inject(fault))


def test_a_failed_conversion_fails_the_run_with_compute_engines_message(conversion_fails: BackupRun) -> None:
    assert conversion_fails.state == "failed"
    assert conversion_fails.report is not None
    assert any("Quota 'SNAPSHOTS' exceeded." in e.message for e in conversion_fails.report.errors)


def test_a_failed_conversion_leaves_no_instant_snapshot_and_the_vm_running(conversion_fails: BackupRun) -> None:
    assert conversion_fails.instant_snapshots == []
    assert conversion_fails.statuses[VM] == "RUNNING"
    assert conversion_fails.left_in_wrong_state == []
    assert vmlabels.LOCK not in conversion_fails.labels[VM]


# -- the instant snapshot itself fails -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cut_fails(backup: Callable[..., BackupRun]) -> BackupRun:
    fault = Fault.operation_error("instantSnapshots.insert", "INTERNAL_ERROR", "Internal error.", times=None)
    spec = {"instances": [{"name": "db-1", "zone": "us-central1-a"}], **INSTANT}  # a boot and a data disk
    return backup("cutfail", spec, lambda sim: sim.inject(fault))


def test_a_failed_instant_snapshot_fails_the_run_with_compute_engines_message(cut_fails: BackupRun) -> None:
    assert cut_fails.state == "failed"
    assert cut_fails.report is not None
    assert any("Internal error." in e.message for e in cut_fails.report.errors)
    assert cut_fails.ours() == []


def test_a_failed_instant_snapshot_starts_the_vm_and_leaves_no_instant_snapshot(cut_fails: BackupRun) -> None:
    assert cut_fails.statuses["db-1"] == "RUNNING"
    assert cut_fails.left_in_wrong_state == []
    assert cut_fails.instant_snapshots == []
    assert len(cut_fails.calls_of("instantSnapshots.delete")) == 2


# -- the per-disk limits, and what earlier runs left -----------------------------------------------------------

# An interval long enough that the instant snapshot seeded just before the run is still "too recent".
RECENT = Profile.fast(instant_snapshot_min_interval_seconds=3600)
OURS = {
    vmlabels.MANAGED_BY: vmlabels.MANAGED_BY_VALUE,
    vmlabels.POLICY_NAMESPACE: "team-a",
    vmlabels.POLICY_NAME: "limits",
}


@pytest.fixture(scope="module")
def limited(backup: Callable[..., BackupRun]) -> BackupRun:
    def prepare(sim: ComputeSimulator) -> None:
        sim.add_instance(PROJECT, ZONE, "blog-2")
        seed_instant_snapshot(sim, "someone-elses", VM, {"owner": "alice"})
        seed_instant_snapshot(sim, "left-by-an-old-run", "blog-2", {**OURS, vmlabels.RUN: "rold"})

    return backup("limits", {**WORDPRESS, **INSTANT}, prepare, profile=RECENT)


def test_an_instant_snapshot_refused_for_a_limit_falls_back_to_a_standard_one(limited: BackupRun) -> None:
    assert limited.state == "success", limited.task_states
    (snap,) = limited.ours()
    assert snap["status"] == "READY"
    assert "sourceInstantSnapshot" not in snap
    assert len(limited.calls_of("disks.createSnapshot")) == 1
    assert limited.violations == []


def test_the_report_names_the_fallback_and_compute_engines_reason(limited: BackupRun) -> None:
    (disk,) = limited.instance_report(VM).disks
    assert disk.method == "standard"
    assert disk.note is not None
    assert "previous instant snapshot is too recent" in disk.note


def test_prune_sweeps_an_instant_snapshot_an_earlier_run_of_the_policy_left(limited: BackupRun) -> None:
    names = {i["name"] for i in limited.instant_snapshots}
    assert "left-by-an-old-run" not in names


def test_an_instant_snapshot_the_policy_did_not_make_is_never_deleted(limited: BackupRun) -> None:
    assert {i["name"] for i in limited.instant_snapshots} == {"someone-elses"}
    deleted = {c["params"].get("instant_snapshot") for c in limited.calls_of("instantSnapshots.delete")}
    assert deleted == {"left-by-an-old-run"}


# -- one VM of a batch fails its window ------------------------------------------------------------------------

ROLLING = ["roll-1", "roll-2", "roll-3"]


@pytest.fixture(scope="module")
def batch_one_fails(backup: Callable[..., BackupRun]) -> BackupRun:
    """A rolling tier is one batch (one down window); roll-2's stop fails, the other two are backed up."""

    def prepare(sim: ComputeSimulator) -> None:
        for name in ROLLING:
            sim.add_instance(PROJECT, "us-central1-a", name, labels={"app": "roll"})
        sim.inject(
            Fault.operation_error("instances.stop", "INTERNAL_ERROR", "Stop failed.", times=None, target="roll-2")
        )

    selector = {"zones": ["us-central1-a"], "matchLabels": {"app": "roll"}}
    return backup("batchfail", {"selector": selector, "maxUnavailable": 1, **INSTANT}, prepare)


def test_a_vm_that_fails_its_window_fails_the_run_naming_it(batch_one_fails: BackupRun) -> None:
    assert batch_one_fails.state == "failed"
    assert batch_one_fails.report is not None
    assert [e.instance for e in batch_one_fails.report.errors if "Stop failed." in e.message] == ["roll-2"]


def test_the_other_vms_of_the_batch_still_get_their_standard_snapshots(batch_one_fails: BackupRun) -> None:
    made = {s["labels"][vmlabels.INSTANCE]: s["status"] for s in batch_one_fails.ours()}
    assert made == {"roll-1": "READY", "roll-3": "READY"}
    assert batch_one_fails.instance_report("roll-1").error is None


def test_the_failed_batch_leaves_every_vm_running_and_no_instant_snapshot(batch_one_fails: BackupRun) -> None:
    assert all(batch_one_fails.statuses[name] == "RUNNING" for name in ROLLING)
    assert batch_one_fails.left_in_wrong_state == []
    assert batch_one_fails.instant_snapshots == []
