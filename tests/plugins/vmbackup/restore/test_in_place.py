"""InPlace restores end to end: the rendered restore DAG with dag.test() on real Airflow against the simulator.

db-1 has a boot disk db-1 (device persistent-disk-0) and a data disk db-1-data (device data); one backup run of
both is seeded as the backup DAG leaves it. Each test restores db-1 in place once and checks one behaviour.
"""

from __future__ import annotations

from typing import Any

import pytest

from devstack.gce_simulator import Fault
from tests.plugins.vmbackup.restore.test_dag_run import PROJECT, ZONE, disk_or_none, restore_env, seed_run
from vmbackup.backup.resolution import Target
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.model import labels as vmlabels
from vmbackup.model.identifiers import lock_holder
from vmbackup.vm.lock import acquire_lock

pytestmark = pytest.mark.airflow

__all__ = ["restore_env"]  # the fixture, shared with the new-VM restore tests

IN_PLACE = {"mode": "InPlace", "inPlace": {"confirmReplaceDisks": True}}
NAME = "db-rollback"
MARKER = f"shop_{NAME}"
NEW_DISKS = {"persistent-disk-0": f"{NAME}-db-1", "data": f"{NAME}-db-1-data"}
ORIGINAL_DISKS = {"persistent-disk-0": "db-1", "data": "db-1-data"}


def disks_of(vm: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    return {d["deviceName"]: (d["source"].rsplit("/", 1)[-1], d["boot"]) for d in vm["disks"]}


def test_an_in_place_restore_keeps_the_vm_and_replaces_its_disks(
    restore_env: Any, gce_sim: Any, gce_clients: Any
) -> None:
    snapshots = seed_run(gce_sim, gce_clients, "rone")
    before = gce_sim.instance(PROJECT, ZONE, "db-1")

    run = restore_env(NAME, **IN_PLACE)

    assert run.state == "success", run.task_states
    vm = gce_sim.instance(PROJECT, ZONE, "db-1")
    assert vm["status"] == "RUNNING"
    kept = ("id", "name", "networkInterfaces", "metadata", "tags", "labels", "machineType", "serviceAccounts")
    assert {k: vm[k] for k in kept} == {k: before[k] for k in kept}
    assert disks_of(vm) == {
        "persistent-disk-0": (NEW_DISKS["persistent-disk-0"], True),
        "data": (NEW_DISKS["data"], False),
    }
    assert [
        gce_sim.disk(PROJECT, ZONE, NEW_DISKS[d])["sourceSnapshot"].rsplit("/", 1)[-1] for d in ORIGINAL_DISKS
    ] == snapshots
    for original in ORIGINAL_DISKS.values():
        disk = gce_sim.disk(PROJECT, ZONE, original)
        assert (disk["users"], disk["labels"].get(vmlabels.REPLACED_BY)) == ([], MARKER)
    assert run.report is not None
    assert (run.report.phase, run.report.mode, run.report.instance) == ("Succeeded", "InPlace", "db-1")
    assert sorted(run.report.replaced_disks) == ["db-1", "db-1-data"]
    assert gce_sim.check_left_stopped() == []


def test_an_in_place_restore_can_delete_the_replaced_disks(restore_env: Any, gce_sim: Any, gce_clients: Any) -> None:
    seed_run(gce_sim, gce_clients, "rone")

    run = restore_env(NAME, mode="InPlace", inPlace={"confirmReplaceDisks": True, "deleteReplacedDisks": True})

    assert run.state == "success", run.task_states
    assert disk_or_none(gce_clients, "db-1") is None
    assert disk_or_none(gce_clients, "db-1-data") is None


def test_a_failure_midway_puts_the_original_disks_back_and_starts_the_vm(
    restore_env: Any, gce_sim: Any, gce_clients: Any
) -> None:
    seed_run(gce_sim, gce_clients, "rone")
    # The new boot disk is attached, the new data disk is not: the VM is stopped with half its disks swapped.
    gce_sim.inject(
        Fault(
            method="instances.attachDisk", action="operation_error", message="Quota 'DISKS' exceeded.", after=1, times=1
        )
    )

    run = restore_env(NAME, **IN_PLACE)

    assert run.state == "failed"
    vm = gce_sim.instance(PROJECT, ZONE, "db-1")
    assert vm["status"] == "RUNNING"
    assert disks_of(vm) == {"persistent-disk-0": ("db-1", True), "data": ("db-1-data", False)}
    assert vmlabels.LOCK not in vm["labels"]
    assert run.report is not None
    assert (run.report.phase, run.report.failed_step, run.report.rolled_back) == ("Failed", "replace_disks", True)
    assert "Quota 'DISKS' exceeded." in (run.report.message or "")
    assert sorted(run.report.deleted_disks) == sorted(NEW_DISKS.values())
    assert gce_sim.check_left_stopped() == []


def test_an_in_place_restore_is_refused_while_a_backup_run_holds_the_vm(
    restore_env: Any, gce_sim: Any, gce_clients: Any
) -> None:
    seed_run(gce_sim, gce_clients, "rone")
    backup = Target(project=PROJECT, zone=ZONE, instance="db-1", tier=None, run="rbackup", status="RUNNING", disks=[])
    backup["holder"] = lock_holder("policy", "team-a", "nightly", "manual__now")
    acquire_lock(ComputeEngineHook(endpoint=gce_sim.base_url), backup, 600)
    before = gce_sim.instance(PROJECT, ZONE, "db-1")

    run = restore_env(NAME, **IN_PLACE)

    assert run.state == "failed"
    assert run.report is not None
    assert "db-1 is held by a backup run" in (run.report.message or "")
    assert "policy team-a/nightly run manual__now" in (run.report.message or "")
    assert gce_sim.instance(PROJECT, ZONE, "db-1") == before
    assert gce_sim.call_counts().get("disks.insert", 0) == 0


def test_running_the_same_in_place_restore_twice_swaps_once(restore_env: Any, gce_sim: Any, gce_clients: Any) -> None:
    seed_run(gce_sim, gce_clients, "rone")
    first = restore_env(NAME, **IN_PLACE)

    second = restore_env(NAME, **IN_PLACE)

    assert (first.state, second.state) == ("success", "success"), second.task_states
    done = [c["method"] for c in gce_sim.calls if c["status"] == 200]
    assert (done.count("disks.insert"), done.count("instances.attachDisk"), done.count("instances.stop")) == (2, 2, 1)
    assert disks_of(gce_sim.instance(PROJECT, ZONE, "db-1"))["data"] == (NEW_DISKS["data"], False)
