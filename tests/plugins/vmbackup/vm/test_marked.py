"""What a restore or drill does with a source VM a run of ours left stopped: starts it, or leaves it to the keeper."""

from __future__ import annotations

import pytest

from devstack.gce_simulator import ComputeSimulator, Fault
from tests.fixtures.gce import GCE_PROJECT
from tests.plugins.vmbackup.vm.left_stopped import STOCKOUT, ZONE, left_stopped_by
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.vm import marked
from vmbackup.vm.mark import read_mark
from vmbackup.vm.marked import restart_source_if_marked


def test_a_marked_source_is_started_and_unmarked(hook: ComputeEngineHook) -> None:
    left_stopped_by(hook, "rold")
    note = restart_source_if_marked(hook, GCE_PROJECT, ZONE, "db-1")
    instance = hook.get_instance(GCE_PROJECT, ZONE, "db-1")
    assert "rold" in (note or "")
    assert instance.status == "RUNNING"
    assert read_mark(instance.labels) is None


def test_a_source_its_owner_stopped_is_left_alone(gce_sim: ComputeSimulator, hook: ComputeEngineHook) -> None:
    hook.wait_done(hook.stop_instance(GCE_PROJECT, ZONE, "db-1"), 60)
    gce_sim.clear_calls()
    assert restart_source_if_marked(hook, GCE_PROJECT, ZONE, "db-1") is None
    assert [c["method"] for c in gce_sim.calls] == ["instances.get"]


def test_a_marked_source_in_a_stockout_keeps_the_mark_and_does_not_fail_the_restore(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    left_stopped_by(hook, "rold")
    gce_sim.inject(Fault.operation_error("instances.start", STOCKOUT, "no capacity", times=None))
    monkeypatch.setattr(marked, "OWED_START_SECONDS", 1)  # a restore gives the start 600 s
    note = marked.restart_source_if_marked(hook, GCE_PROJECT, ZONE, "db-1")
    assert STOCKOUT in (note or "")
    assert read_mark(hook.get_instance(GCE_PROJECT, ZONE, "db-1").labels) is not None
