"""spec.snapshot.project end to end: rendered DAGs run with dag.test() on real Airflow against the simulator.

Same harness as test_dag_run.py. The VM and its disk stay in the workload project; every snapshot the run makes, reads,
waits for and prunes is in the backup project, and nothing outside what the policy made there is deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from devstack.gce_simulator import ComputeSimulator
from tests.plugins.vmbackup.backup.test_dag_run import PROJECT, WORDPRESS, BackupRun, backup, seed_snapshot
from vmbackup.model import labels as vmlabels

pytestmark = pytest.mark.airflow

__all__ = ["backup"]  # the harness's module-scoped fixture, used here as in test_dag_run.py

BACKUPS = "demo-backups"
VM = "wordpress-1-vm"
POLICY = "vault"
OURS = {
    vmlabels.MANAGED_BY: vmlabels.MANAGED_BY_VALUE,
    vmlabels.POLICY_NAMESPACE: "team-a",
    vmlabels.POLICY_NAME: POLICY,
    vmlabels.INSTANCE: VM,  # runs of the same VM: keepLastSuccessful counts complete runs per VM
}


SEEDED = {"old-0", "old-1", "old-2", "in-workload", "other-policy", "manual"}


def in_project(run: BackupRun, project: str) -> list[dict[str, Any]]:
    return [s for s in run.snapshots if f"/projects/{project}/global/snapshots/" in s["selfLink"]]


def made_by_the_run(run: BackupRun) -> dict[str, Any]:
    (made,) = [s for s in run.snapshots if s["name"] not in SEEDED]
    return made


@pytest.fixture(scope="module")
def vault(backup: Callable[..., BackupRun]) -> BackupRun:
    """Three older runs of the policy in the backup project, a snapshot carrying the policy's labels in the workload
    project, another policy's and a hand-made one in the backup project; the policy keeps 2, as ARCHIVE, in us."""

    def prepare(sim: ComputeSimulator) -> None:
        for index in range(3):
            seed_snapshot(sim, f"old-{index}", {**OURS, vmlabels.RUN: f"rold{index}"}, project=BACKUPS)
        seed_snapshot(sim, "in-workload", {**OURS, vmlabels.RUN: "rwork"})
        seed_snapshot(sim, "other-policy", {**OURS, vmlabels.POLICY_NAME: "someone-else"}, project=BACKUPS)
        seed_snapshot(sim, "manual", {"owner": "alice"}, project=BACKUPS)

    settings = {"project": BACKUPS, "type": "ARCHIVE", "storageLocation": "us"}
    return backup(POLICY, {**WORDPRESS, "retention": {"count": 2}, "snapshot": settings}, prepare)


def test_a_backup_into_another_project_succeeds(vault: BackupRun) -> None:
    assert vault.state == "success", vault.task_states
    assert vault.report is not None
    assert [d.state for d in vault.instance_report(VM).disks] == ["READY"]
    assert vault.violations == []
    assert vault.left_in_wrong_state == []
    assert vault.statuses[VM] == "RUNNING"


def test_the_snapshot_is_written_into_the_backup_project_from_the_workload_disk(vault: BackupRun) -> None:
    made = made_by_the_run(vault)
    assert made["selfLink"].endswith(f"/projects/{BACKUPS}/global/snapshots/{made['name']}")
    assert made["sourceDisk"].endswith(f"/projects/{PROJECT}/zones/us-central1-c/disks/{VM}")
    assert made["status"] == "READY"
    inserts = vault.calls_of("snapshots.insert")
    assert [c["params"]["project"] for c in inserts] == [BACKUPS]
    assert vault.calls_of("disks.createSnapshot") == []


def test_the_snapshot_has_the_policy_type_and_storage_location(vault: BackupRun) -> None:
    made = made_by_the_run(vault)
    assert made["snapshotType"] == "ARCHIVE"
    assert made["storageLocations"] == ["us"]


def test_pruning_deletes_the_older_runs_in_the_backup_project_only(vault: BackupRun) -> None:
    assert vault.report is not None
    assert sorted(vault.report.pruned_snapshots) == ["old-0", "old-1"]
    deleted = [(c["params"]["project"], c["params"]["snapshot"]) for c in vault.calls_of("snapshots.delete")]
    assert sorted(deleted) == [(BACKUPS, "old-0"), (BACKUPS, "old-1")]


def test_nothing_the_policy_did_not_make_is_deleted(vault: BackupRun) -> None:
    assert {"other-policy", "manual"} <= {s["name"] for s in in_project(vault, BACKUPS)}
    assert [s["name"] for s in in_project(vault, PROJECT)] == ["in-workload"]


# -- the instant method into a backup project ------------------------------------------------------------------


@pytest.fixture(scope="module")
def instant_vault(backup: Callable[..., BackupRun]) -> BackupRun:
    return backup("vault-instant", {**WORDPRESS, "snapshot": {"project": BACKUPS, "method": "instant"}})


def test_an_instant_cut_is_converted_into_the_backup_project(instant_vault: BackupRun) -> None:
    assert instant_vault.state == "success", instant_vault.task_states
    (made,) = in_project(instant_vault, BACKUPS)
    assert made["status"] == "READY"
    assert f"/projects/{PROJECT}/zones/us-central1-c/instantSnapshots/" in made["sourceInstantSnapshot"]
    assert in_project(instant_vault, PROJECT) == []


def test_the_instant_snapshot_in_the_workload_project_is_deleted_after_the_conversion(instant_vault: BackupRun) -> None:
    assert instant_vault.calls_of("instantSnapshots.delete")
    assert [
        i for i in instant_vault.instant_snapshots if i["labels"].get(vmlabels.POLICY_NAME) == "vault-instant"
    ] == []


# -- a backup project the DAG's service account may not write to -----------------------------------------------


@pytest.fixture(scope="module")
def denied(backup: Callable[..., BackupRun]) -> BackupRun:
    """The tenancy map grants the backup project, but IAM does not give the DAG's identity compute.snapshots.create
    there: Compute Engine answers 403, and the run must fail with that message, the VM running again."""

    def prepare(sim: ComputeSimulator) -> None:
        seed_snapshot(sim, "old-0", {**OURS, vmlabels.POLICY_NAME: "vault-denied", vmlabels.RUN: "rold0"}, BACKUPS)
        sim.deny_permission(BACKUPS, "compute.snapshots.create")

    return backup("vault-denied", {**WORDPRESS, "snapshot": {"project": BACKUPS}}, prepare)


def test_a_missing_permission_in_the_backup_project_fails_the_run_with_compute_engines_message(
    denied: BackupRun,
) -> None:
    assert denied.state == "failed"
    assert denied.report is not None
    assert any("Required 'compute.snapshots.create' permission" in e.message for e in denied.report.errors)


def test_a_missing_permission_leaves_the_vm_running_and_the_last_backup_in_place(denied: BackupRun) -> None:
    assert denied.statuses[VM] == "RUNNING"
    assert denied.left_in_wrong_state == []
    assert [s["name"] for s in denied.snapshots] == ["old-0"]
    assert denied.calls_of("snapshots.delete") == []


# -- separated duties: the DAG's identity may create backups in the backup project but not delete them ---------


@pytest.fixture(scope="module")
def no_delete(backup: Callable[..., BackupRun]) -> BackupRun:
    def prepare(sim: ComputeSimulator) -> None:
        seed_snapshot(sim, "old-0", {**OURS, vmlabels.POLICY_NAME: "vault-keep", vmlabels.RUN: "rold0"}, BACKUPS)
        sim.deny_permission(BACKUPS, "compute.snapshots.delete")

    spec = {**WORDPRESS, "retention": {"count": 1}, "snapshot": {"project": BACKUPS}}
    return backup("vault-keep", spec, prepare)


def test_without_delete_permission_the_backup_is_made_and_the_prune_fails_naming_the_permission(
    no_delete: BackupRun,
) -> None:
    assert no_delete.state == "failed", (no_delete.task_states, no_delete.report)
    assert no_delete.report is not None
    assert [d.state for d in no_delete.instance_report(VM).disks] == ["READY"]
    assert any("Required 'compute.snapshots.delete' permission" in e.message for e in no_delete.report.errors)


def test_without_delete_permission_every_snapshot_is_kept(no_delete: BackupRun) -> None:
    assert len(in_project(no_delete, BACKUPS)) == 2
    assert no_delete.statuses[VM] == "RUNNING"
