"""One keeper pass against the simulator, through the real client: marked VMs are started once their backoff is up."""

from __future__ import annotations

import time

import pytest

from devstack.gce_simulator import ComputeSimulator, Fault
from tests.fixtures.gce import GCE_PROJECT
from tests.plugins.vmbackup.vm.left_stopped import (
    STOCKOUT,
    ZONE,
    left_stopped_by,
    promise_policy,
    promise_target,
    window,
)
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.keeper.sweep import BACKOFF_CAP_SECONDS, keep, next_try_at
from vmbackup.model import labels as vmlabels
from vmbackup.vm.lock import VmRef, acquire_lock
from vmbackup.vm.mark import Mark, read_mark
from vmbackup.vm.marked import bring_back_if_ours
from vmbackup.vm.power import StockoutError


@pytest.fixture
def hook(gce_sim: ComputeSimulator) -> ComputeEngineHook:
    return ComputeEngineHook(endpoint=gce_sim.base_url, backoff_base_seconds=0.01)


def starts(sim: ComputeSimulator) -> int:
    return len([c for c in sim.calls if c["method"] == "instances.start" and c["status"] == 200])


def test_a_pass_after_the_stockout_starts_the_vm_and_removes_the_mark(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook
) -> None:
    left_stopped_by(hook, "rold")
    report, failed = keep(hook, [GCE_PROJECT], poll_seconds=0.05)
    instance = hook.get_instance(GCE_PROJECT, ZONE, "db-1")
    assert failed == {}
    assert [(e.instance, e.stopped_by) for e in report.started] == [("db-1", "rold")]
    assert report.left_stopped == []
    assert instance.status == "RUNNING"
    assert read_mark(instance.labels) is None


def test_a_pass_during_a_stockout_reports_the_vm_and_backs_off(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook
) -> None:
    left_stopped_by(hook, "rold")
    gce_sim.inject(Fault.operation_error("instances.start", STOCKOUT, "no capacity", times=None))
    first, _ = keep(hook, [GCE_PROJECT], poll_seconds=0.05)
    second, _ = keep(hook, [GCE_PROJECT], poll_seconds=0.05)  # within the backoff: no second try
    (left,) = second.left_stopped
    assert first.left_stopped[0].attempts == 1
    assert STOCKOUT in (first.left_stopped[0].last_error or "")
    assert left.status == "TERMINATED"
    assert left.next_attempt_at is not None
    assert left.next_attempt_at.timestamp() > time.time()
    assert starts(gce_sim) == 1
    assert hook.get_instance(GCE_PROJECT, ZONE, "db-1").labels[vmlabels.STOPPED_BY] == "rold"


def test_a_pass_leaves_a_vm_a_run_holds_to_that_run(gce_sim: ComputeSimulator, hook: ComputeEngineHook) -> None:
    acquire_lock(hook, VmRef(project=GCE_PROJECT, zone=ZONE, instance="db-1", run="rnow"), 600)
    hook.wait_done(hook.stop_instance(GCE_PROJECT, ZONE, "db-1"), 60)  # inside that run's down window
    gce_sim.clear_calls()
    report, _ = keep(hook, [GCE_PROJECT], poll_seconds=0.05)
    assert starts(gce_sim) == 0
    assert report.started == []
    assert report.left_stopped == []
    assert hook.get_instance(GCE_PROJECT, ZONE, "db-1").labels[vmlabels.STOPPED_BY] == "rnow"


def test_the_backoff_doubles_from_the_stop_and_is_capped() -> None:
    tries = [next_try_at(Mark(run="r", at=1000, tries=n, last_try=1000)) - 1000 for n in range(12)]
    assert tries[:4] == [0, 60, 120, 240]
    assert max(tries) == BACKOFF_CAP_SECONDS


def test_after_a_long_stockout_failed_the_window_a_pass_brings_the_vm_back(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook
) -> None:
    gce_sim.stockout(ZONE, 10**6)  # hours of Compute Engine time (the fast profile plays 1000 s): every start fails
    vm = window(hook, timeouts={"startSeconds": 30})
    assert STOCKOUT in (vm["error"] or "")
    assert read_mark(hook.get_instance(GCE_PROJECT, ZONE, "db-1").labels) is not None
    # the run's safety net meets the stockout too and lets go of the VM: the mark stays, the lock goes
    with pytest.raises(StockoutError):
        bring_back_if_ours(
            hook, promise_target(hook, promise_policy()), timeout_seconds=5, stopping_seconds=1, poll_seconds=0.05
        )
    gce_sim.stockout(ZONE, 0)  # capacity is back
    report, _ = keep(hook, [GCE_PROJECT], poll_seconds=0.05)
    instance = hook.get_instance(GCE_PROJECT, ZONE, "db-1")
    assert [e.instance for e in report.started] == ["db-1"]
    assert instance.status == "RUNNING"
    assert read_mark(instance.labels) is None
