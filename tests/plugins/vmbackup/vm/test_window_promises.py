"""The down window keeps its promise through the VM layer: a VM we stopped runs again, or keeps the mark."""

from __future__ import annotations

from devstack.gce_simulator import ComputeSimulator, Fault
from tests.fixtures.gce import GCE_PROJECT
from tests.plugins.vmbackup.vm.left_stopped import STOCKOUT, ZONE, left_stopped_by, window
from vmbackup.backup.down_window import FULL, VmWindow, run_window
from vmbackup.backup.resolution import resolve_targets
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.model import labels as vmlabels
from vmbackup.model.policy import parse_policy


def methods(sim: ComputeSimulator) -> list[str]:
    return [c["method"] for c in sim.calls if c["status"] == 200]


def test_the_vm_ends_as_it_began_under_a_stockout_of_a_few_starts(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook
) -> None:
    gce_sim.inject(Fault.operation_error("instances.start", STOCKOUT, "no capacity", times=3))
    vm = window(hook)
    instance = hook.get_instance(GCE_PROJECT, ZONE, "db-1")
    assert vm["error"] is None
    assert instance.status == "RUNNING"
    assert vmlabels.STOPPED_BY not in instance.labels
    assert vmlabels.LOCK not in instance.labels


def test_a_long_stockout_fails_the_window_naming_it_and_the_vm_keeps_the_mark(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook
) -> None:
    gce_sim.inject(Fault.operation_error("instances.start", STOCKOUT, "no capacity", times=None))
    vm = window(hook, timeouts={"startSeconds": 30})
    instance = hook.get_instance(GCE_PROJECT, ZONE, "db-1")
    assert vm["error_step"] == "wait_started"
    assert STOCKOUT in (vm["error"] or "")
    assert "vmbackup_keeper" in (vm["error"] or "")
    assert instance.status == "TERMINATED"
    assert instance.labels[vmlabels.STOPPED_BY]  # the keeper's to start


def test_a_vm_an_earlier_run_left_stopped_is_started_before_it_is_backed_up(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook
) -> None:
    left_stopped_by(hook, "rold")
    gce_sim.clear_calls()
    vm = window(hook)
    calls = methods(gce_sim)
    assert vm["error"] is None
    assert vm["prior_status"] == "RUNNING"
    assert vm["stopped"] is True
    assert calls.index("instances.start") < calls.index("instances.stop") < calls.index("disks.createSnapshot")
    instance = hook.get_instance(GCE_PROJECT, ZONE, "db-1")
    assert instance.status == "RUNNING"
    assert vmlabels.STOPPED_BY not in instance.labels


def test_a_vm_its_owner_stopped_is_still_snapshotted_as_it_is(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook
) -> None:
    hook.wait_done(hook.stop_instance(GCE_PROJECT, ZONE, "db-1"), 60)  # no mark: not ours to start
    gce_sim.clear_calls()
    vm = window(hook)
    assert vm["error"] is None
    assert vm["stopped"] is False
    assert "instances.start" not in methods(gce_sim)
    assert hook.get_instance(GCE_PROJECT, ZONE, "db-1").status == "TERMINATED"


def test_a_spot_vm_preempted_before_the_run_is_snapshotted_not_started(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook
) -> None:
    gce_sim.add_instance(GCE_PROJECT, ZONE, "spot-1", provisioning_model="SPOT")
    gce_sim.preempt(GCE_PROJECT, ZONE, "spot-1")
    assert gce_sim.wait_idle(120)
    gce_sim.clear_calls()
    vm = window(hook, name="spot-1")
    assert vm["error"] is None
    assert "Spot VM" in (vm["note"] or "")
    assert "instances.start" not in methods(gce_sim)
    assert hook.get_instance(GCE_PROJECT, ZONE, "spot-1").status == "TERMINATED"


def local_ssd_window(hook: ComputeEngineHook, discard: bool) -> VmWindow:
    """The window of a VM with a Local SSD, resolved under spec.stop.discardLocalSsd: true; without `discard` the
    target loses the resolved choice, as a target of a DAG from before the check would have none."""
    spec = {"project": GCE_PROJECT, "instances": [{"name": "ssd-1", "zone": ZONE}], "stop": {"discardLocalSsd": True}}
    policy = parse_policy("team-a", "ssd", spec)
    (target,) = resolve_targets(policy, "manual__ssd", hook)["groups"]["instances"]
    assert target.get("discard_local_ssd") is True
    if not discard:
        del target["discard_local_ssd"]
    (vm,) = run_window(
        hook, policy, [target], None, FULL, max_unavailable=1, project_limit=4, poll_seconds=0.05, lock_ttl_seconds=600
    )
    return vm


def test_a_vm_with_a_local_ssd_is_stopped_with_discard_when_the_target_allows_it(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook
) -> None:
    gce_sim.add_instance(GCE_PROJECT, ZONE, "ssd-1", local_ssds=1)
    vm = local_ssd_window(hook, discard=True)
    assert vm["error"] is None
    assert vm["stopped"] is True
    assert hook.get_instance(GCE_PROJECT, ZONE, "ssd-1").status == "RUNNING"


def test_a_vm_with_a_local_ssd_and_no_choice_is_refused_and_left_running(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook
) -> None:
    gce_sim.add_instance(GCE_PROJECT, ZONE, "ssd-1", local_ssds=1)
    vm = local_ssd_window(hook, discard=False)
    instance = hook.get_instance(GCE_PROJECT, ZONE, "ssd-1")
    assert vm["error_step"] == "instances.stop"
    assert "discard-local-ssd" in (vm["error"] or "")
    assert instance.status == "RUNNING"
    assert vmlabels.STOPPED_BY not in instance.labels
