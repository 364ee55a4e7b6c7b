"""Restores of a policy whose snapshots live in a separate backup project (spec.snapshot.project): a real backup run
into it, then the restore DAG, dag.test() on real Airflow against the simulator. The new disks and VM are made in the
workload project from the snapshots in the backup project."""

from __future__ import annotations

import pytest

from tests.fixtures.gce import GCE_PROJECT
from tests.fixtures.recovery import ZONE, RecoveryStack
from vmbackup.model.policy import BackupPolicy

pytestmark = pytest.mark.airflow

BACKUPS = "shop-backups"


@pytest.fixture
def backed_up(stack: RecoveryStack) -> BackupPolicy:
    policy = stack.policy(snapshot={"project": BACKUPS})
    stack.back_up(policy)
    assert stack.sim.snapshots(GCE_PROJECT) == []
    assert len(stack.sim.snapshots(BACKUPS)) == 2
    return policy


def test_a_backup_in_the_backup_project_is_restored_as_a_new_vm_in_the_workload_project(
    stack: RecoveryStack, backed_up: BackupPolicy
) -> None:
    outcome, report = stack.restore(backed_up, "db-back")

    assert outcome.state == "success", outcome.task_states
    assert report is not None
    assert report.phase == "Succeeded"
    vm = stack.sim.instance(GCE_PROJECT, ZONE, "db-back")
    assert vm["status"] == "RUNNING"
    disks = [stack.sim.disk(GCE_PROJECT, ZONE, d["source"].rsplit("/", 1)[-1]) for d in vm["disks"]]
    backups = {s["selfLink"] for s in stack.sim.snapshots(BACKUPS)}
    assert {d["sourceSnapshot"] for d in disks} == backups


def test_the_restore_looks_for_the_snapshots_in_the_backup_project_only(
    stack: RecoveryStack, backed_up: BackupPolicy
) -> None:
    stack.sim.clear_calls()
    stack.restore(backed_up, "db-back")
    read = {c["params"]["project"] for c in stack.sim.calls if c["method"] in ("snapshots.list", "snapshots.get")}
    assert read == {BACKUPS}


def test_a_vm_deleted_with_its_disks_is_restored_from_the_backup_project(
    stack: RecoveryStack, backed_up: BackupPolicy
) -> None:
    """What the backup project is for: the workload project lost the VM and its disks, the backups are elsewhere."""
    stack.delete_instance("db-1")
    stack.delete_disk("db-1-data")

    outcome, report = stack.restore(backed_up, "db-back")

    assert outcome.state == "success", outcome.task_states
    assert report is not None
    assert stack.sim.instance(GCE_PROJECT, ZONE, "db-back")["status"] == "RUNNING"


def test_without_read_access_to_the_backups_the_restore_fails_naming_the_permission_and_leaves_no_disk(
    stack: RecoveryStack, backed_up: BackupPolicy
) -> None:
    stack.sim.deny_permission(BACKUPS, "compute.snapshots.useReadOnly")

    outcome, report = stack.restore(backed_up, "db-back")

    assert outcome.state == "failed"
    assert report is not None
    assert "Required 'compute.snapshots.useReadOnly' permission" in (report.message or "")
    with stack.sim.world.cond:
        assert not [d for d in stack.sim.world.disks.values() if d.name.startswith("db-back")]
    assert len(stack.sim.snapshots(BACKUPS)) == 2
