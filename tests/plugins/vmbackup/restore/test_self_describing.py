"""Self-describing backups: a real backup run records what a restore needs, and a VM that is gone, with several
disks, is restored from that record alone (no overrides). dag.test() on real Airflow, the simulator."""

from __future__ import annotations

import pytest

from tests.fixtures.gce import GCE_PROJECT
from tests.fixtures.recovery import ZONE, RecoveryStack
from vmbackup.model import labels as vmlabels
from vmbackup.model.backup_record import read_record

pytestmark = pytest.mark.airflow


def test_each_snapshot_says_which_disk_booted_and_its_device_name(stack: RecoveryStack) -> None:
    stack.back_up(stack.policy())
    labels = {s["sourceDisk"].rsplit("/", 1)[-1]: s["labels"] for s in stack.sim.snapshots(GCE_PROJECT)}
    assert (labels["db-1"][vmlabels.BOOT], labels["db-1"][vmlabels.DEVICE]) == ("true", "persistent-disk-0")
    assert (labels["db-1-data"][vmlabels.BOOT], labels["db-1-data"][vmlabels.DEVICE]) == ("false", "data")


def test_each_snapshot_records_the_vms_configuration(stack: RecoveryStack) -> None:
    stack.back_up(stack.policy())
    records = [read_record(s["description"]) for s in stack.sim.snapshots(GCE_PROJECT)]
    assert records[0] == records[1]
    record = records[0]
    assert record is not None
    assert record["machine_type"] == "n2-standard-4"
    assert record["network_interfaces"][0]["network"].endswith("/global/networks/default")
    assert record["service_accounts"][0]["email"].endswith("-compute@developer.gserviceaccount.com")
    assert record["labels"] == {"app": "shop", "tier": "db"}
    assert [(d["disk"], d["boot"], d["device_name"]) for d in record["disks"]] == [
        ("db-1", True, "persistent-disk-0"),
        ("db-1-data", False, "data"),
    ]


def test_a_deleted_vm_with_several_disks_is_restored_without_overrides(stack: RecoveryStack) -> None:
    policy = stack.policy()
    stack.back_up(policy)
    source = stack.sim.instance(GCE_PROJECT, ZONE, "db-1")
    stack.delete_instance("db-1")
    stack.delete_disk("db-1-data")  # the boot disk went with the VM (autoDelete)

    outcome, report = stack.restore(policy, "db-back")

    assert outcome.state == "success", outcome.task_states
    assert report is not None
    assert report.phase == "Succeeded"
    vm = stack.sim.instance(GCE_PROJECT, ZONE, "db-back")
    assert vm["status"] == "RUNNING"
    assert vm["machineType"].endswith("/machineTypes/n2-standard-4")
    assert [(d["source"].rsplit("/", 1)[-1], d["boot"], d["deviceName"]) for d in vm["disks"]] == [
        ("db-back", True, "persistent-disk-0"),
        ("db-back-db-1-data", False, "data"),
    ]
    assert vm["serviceAccounts"] == source["serviceAccounts"]
    assert vm["tags"]["items"] == source["tags"]["items"]
    assert vm["labels"]["tier"] == "db"


def test_a_deleted_vm_from_a_run_that_recorded_nothing_still_needs_the_overrides(stack: RecoveryStack) -> None:
    policy = stack.policy()
    stack.back_up(policy)
    for snapshot in stack.sim.world.snapshots.values():
        snapshot.description = "made before backups described themselves"
    stack.delete_instance("db-1")

    outcome, report = stack.restore(policy, "db-back")

    assert outcome.state == "failed"
    assert report is not None
    assert report.message is not None
    assert "spec.overrides.machineType" in report.message
    assert "spec.overrides.bootDisk" in report.message
