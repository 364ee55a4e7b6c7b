"""Start-until-running and the stopped-by mark against the simulator, through the real client."""

from __future__ import annotations

import pytest

from devstack.gce_simulator import ComputeSimulator, Fault
from tests.fixtures.gce import GCE_PROJECT
from tests.plugins.vmbackup.vm.left_stopped import STOCKOUT, ZONE, left_stopped_by
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.model import labels as vmlabels
from vmbackup.vm.lock import VmRef, acquire_lock, release_lock
from vmbackup.vm.mark import read_mark
from vmbackup.vm.power import Started, StockoutError, start_until_running


def start(hook: ComputeEngineHook, timeout: float = 30) -> Started:
    return start_until_running(
        hook, GCE_PROJECT, ZONE, "db-1", timeout_seconds=timeout, poll_seconds=0.05, timeout_field="the test's"
    )


def test_a_start_that_meets_a_few_stockouts_ends_running(gce_sim: ComputeSimulator, hook: ComputeEngineHook) -> None:
    left_stopped_by(hook, "rold")
    gce_sim.inject(Fault.operation_error("instances.start", STOCKOUT, "no capacity", times=3))
    started = start(hook)
    assert hook.get_instance(GCE_PROJECT, ZONE, "db-1").status == "RUNNING"
    assert len(started.stockouts) == 3


def test_a_stockout_longer_than_the_timeout_names_the_stockout_and_the_keeper(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook
) -> None:
    left_stopped_by(hook, "rold")
    gce_sim.inject(Fault.operation_error("instances.start", STOCKOUT, "no capacity", times=None))
    with pytest.raises(StockoutError) as raised:
        start(hook, timeout=5)
    assert STOCKOUT in str(raised.value)
    assert "vmbackup_keeper" in str(raised.value)
    assert hook.get_instance(GCE_PROJECT, ZONE, "db-1").status == "TERMINATED"


def test_a_stockout_whose_timeout_runs_out_while_compute_engine_answers_slowly_is_still_a_stockout(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook
) -> None:
    left_stopped_by(hook, "rold")
    gce_sim.inject(Fault.operation_error("instances.start", STOCKOUT, "no capacity", times=None))
    # Each read of the VM after the first stockout outlasts the timeout: it runs out between tries, not in one.
    gce_sim.inject(Fault.slow("instances.get", 2.0, times=None))
    with pytest.raises(StockoutError) as raised:
        start(hook, timeout=1)
    assert "vmbackup_keeper" in str(raised.value)


def test_locking_a_running_vm_marks_it_in_the_same_call(gce_sim: ComputeSimulator, hook: ComputeEngineHook) -> None:
    acquire_lock(hook, VmRef(project=GCE_PROJECT, zone=ZONE, instance="db-1", run="rnew"), 600)
    labels = hook.get_instance(GCE_PROJECT, ZONE, "db-1").labels
    assert labels[vmlabels.LOCK].startswith("rnew-")
    assert labels[vmlabels.STOPPED_BY] == "rnew"
    assert len([c for c in gce_sim.calls if c["method"] == "instances.setLabels"]) == 1


def test_releasing_the_lock_of_a_stopped_vm_keeps_the_mark(hook: ComputeEngineHook) -> None:
    left_stopped_by(hook, "rold")
    mark = read_mark(hook.get_instance(GCE_PROJECT, ZONE, "db-1").labels)
    assert mark is not None
    assert mark.run == "rold"


def test_releasing_the_lock_of_a_running_vm_removes_the_mark(hook: ComputeEngineHook) -> None:
    ref = VmRef(project=GCE_PROJECT, zone=ZONE, instance="db-1", run="rnew")
    acquire_lock(hook, ref, 600)
    release_lock(hook, ref)
    labels = hook.get_instance(GCE_PROJECT, ZONE, "db-1").labels
    assert vmlabels.STOPPED_BY not in labels
    assert vmlabels.LOCK not in labels
