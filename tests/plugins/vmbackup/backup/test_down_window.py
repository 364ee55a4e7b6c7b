"""The down window re-entered after a restart: run_window against the simulator, left where a killed try leaves it.

A worker or triggerer that dies mid-window leaves only Compute Engine's state behind (our lock label, a stop under
way, the cuts). Each test sets up that state through the real API, as the interrupted try made it, then runs the
window again: every VM is stopped once, gets one snapshot per disk and ends as it began.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from devstack.gce_simulator import ComputeSimulator, Fault
from tests.fixtures.clock_steps import LONG, ended_once, operation_done, retaining, stepped_until
from tests.fixtures.gce import GCE_PROJECT
from tests.fixtures.waits import wait_until
from vmbackup.backup.down_window import DOWN, EARLIER_TRY_NOTE, FULL, VmWindow, run_window
from vmbackup.backup.resolution import Target, resolve_targets
from vmbackup.backup.snapshot_cuts import cut_snapshots
from vmbackup.backup.window_guards import windows_at
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.model import labels as vmlabels
from vmbackup.model.policy import BackupPolicy, parse_policy
from vmbackup.vm.lock import acquire_lock, holds_our_lock

DB = {"name": "db-1", "zone": "us-central1-a"}  # a boot disk and a data disk
DB_VM = f"instances/{DB['name']}"  # the end of its operations' targetLink


@pytest.fixture
def hook(gce_sim: ComputeSimulator) -> ComputeEngineHook:
    return ComputeEngineHook(endpoint=gce_sim.base_url, backoff_base_seconds=0.01)


@pytest.fixture
def policy() -> BackupPolicy:
    return parse_policy("team-a", "reentry", {"project": GCE_PROJECT, "instances": [DB]})


@pytest.fixture
def target(policy: BackupPolicy, hook: ComputeEngineHook) -> Target:
    (found,) = resolve_targets(policy, "manual__reentry", hook)["groups"]["instances"]
    return found


@pytest.fixture
def window(policy: BackupPolicy, hook: ComputeEngineHook, target: Target) -> Callable[..., list[VmWindow]]:
    def run(phase: Any = FULL) -> list[VmWindow]:
        return run_window(
            hook,
            policy,
            [target],
            None,
            phase,
            max_unavailable=1,
            project_limit=4,
            poll_seconds=0.05,
            lock_ttl_seconds=600,
        )

    return run


def stops(sim: ComputeSimulator) -> list[dict[str, Any]]:
    return [c for c in sim.calls if c["method"] == "instances.stop" and c["status"] == 200]


def our_snapshots(sim: ComputeSimulator, target: Target) -> list[str]:
    return sorted(s["name"] for s in sim.snapshots(GCE_PROJECT) if s["labels"].get(vmlabels.RUN) == target["run"])


def cuts_taken(sim: ComputeSimulator, target: Target) -> bool:
    """The run's cut of each of the VM's two disks has left CREATING."""
    cuts = [s for s in sim.snapshots(GCE_PROJECT) if s["labels"].get(vmlabels.RUN) == target["run"]]
    return len(cuts) == 2 and all(s["status"] != "CREATING" for s in cuts)


def ends_as_it_began(sim: ComputeSimulator, hook: ComputeEngineHook, target: Target) -> bool:
    instance = hook.get_instance(GCE_PROJECT, target["zone"], target["instance"])
    return instance.status == "RUNNING" and not holds_our_lock(instance, target) and sim.check_left_stopped() == []


def test_a_window_run_twice_stops_the_vm_once_and_cuts_once(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook, target: Target, window: Callable[..., list[VmWindow]]
) -> None:
    (first,) = window()
    (second,) = window()
    assert first["error"] is None
    assert second["error"] is None
    assert len(stops(gce_sim)) == 1
    assert len(our_snapshots(gce_sim, target)) == 2
    assert ends_as_it_began(gce_sim, hook, target)


def test_an_instant_window_run_twice_stops_the_vm_once_and_cuts_once(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook
) -> None:
    instant = parse_policy(
        "team-a", "instant", {"project": GCE_PROJECT, "instances": [DB], "snapshot": {"method": "instant"}}
    )
    (t,) = resolve_targets(instant, "manual__instant", hook)["groups"]["instances"]
    for _ in range(2):  # the second: Airflow retried the step after the first had brought the VM back
        (vm,) = run_window(
            hook, instant, [t], None, FULL, max_unavailable=1, project_limit=4, poll_seconds=0.05, lock_ttl_seconds=600
        )
        assert vm["error"] is None
        assert [s["kind"] for s in vm["snapshots"]] == ["instant", "instant"]
    assert len(stops(gce_sim)) == 1
    assert len(gce_sim.instant_snapshots(GCE_PROJECT)) == 2
    assert ends_as_it_began(gce_sim, hook, t)


def test_a_window_killed_after_locking_stops_the_vm_once(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook, target: Target, window: Callable[..., list[VmWindow]]
) -> None:
    acquire_lock(hook, target, 600)  # the killed try locked the VM and died before asking for the stop
    (vm,) = window()
    assert vm["error"] is None
    assert len(stops(gce_sim)) == 1
    assert ends_as_it_began(gce_sim, hook, target)


def test_a_window_killed_while_the_vm_stops_does_not_stop_it_again(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook, target: Target, window: Callable[..., list[VmWindow]]
) -> None:
    acquire_lock(hook, target, 600)
    hook.stop_instance(GCE_PROJECT, target["zone"], target["instance"])  # the killed try's stop, still under way
    wait_until(  # Compute Engine had taken it up (STOPPING) when the try died; a RUNNING VM would be stopped again
        lambda: hook.get_instance(GCE_PROJECT, target["zone"], target["instance"]).status != "RUNNING",
        what="the killed try's stop under way",
        interval=0.01,
    )
    (vm,) = window()
    assert vm["error"] is None
    assert vm["stopped"] is True
    assert len(stops(gce_sim)) == 1
    assert len(our_snapshots(gce_sim, target)) == 2
    assert ends_as_it_began(gce_sim, hook, target)


def test_a_window_killed_after_the_cut_starts_the_vm_without_a_second_cut(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook, target: Target, window: Callable[..., list[VmWindow]]
) -> None:
    (down,) = window(DOWN)  # the try got as far as the cut: the VM is down, locked, its snapshots cut
    assert hook.get_instance(GCE_PROJECT, target["zone"], target["instance"]).status == "TERMINATED"
    (vm,) = window()
    assert down["error"] is None
    assert vm["error"] is None
    assert len(stops(gce_sim)) == 1
    creates = [c for c in gce_sim.calls if c["method"] == "disks.createSnapshot" and c["status"] == 200]
    assert len(creates) == 2
    assert ends_as_it_began(gce_sim, hook, target)


def test_a_window_killed_while_its_cut_is_creating_starts_the_vm_only_once_the_disk_was_read(
    gce_sim: ComputeSimulator,
    hook: ComputeEngineHook,
    policy: BackupPolicy,
    target: Target,
    window: Callable[..., list[VmWindow]],
) -> None:
    gce_sim.set_profile(retaining())
    gce_sim.inject(Fault.slow("disks.createSnapshot", LONG, times=None))  # CREATING until the re-run waits on it
    acquire_lock(hook, target, 600)
    hook.wait_done(hook.stop_instance(GCE_PROJECT, target["zone"], target["instance"]), 30)
    cut_snapshots(hook, policy, target, None)  # the killed try's cut, its disks still being read
    gce_sim.clear_calls()

    def waited_on() -> bool:  # the re-run found the two cuts (a look each) and has looked again at them since
        return len(calls_to(gce_sim, "snapshots.get")) >= 3 * 2

    with ended_once(gce_sim, waited_on, lambda: cuts_taken(gce_sim, target), "the killed try's cuts taken"):
        (vm,) = window()
    assert vm["error"] is None
    assert [v["kind"] for v in gce_sim.violations] == []  # no start while a snapshot was CREATING
    assert ends_as_it_began(gce_sim, hook, target)


def test_a_window_run_again_after_its_cut_failed_reports_the_failure_and_stops_nothing_again(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook, target: Target, window: Callable[..., list[VmWindow]]
) -> None:
    gce_sim.inject(Fault.operation_error("disks.createSnapshot", "QUOTA_EXCEEDED", "Quota 'SNAPSHOTS'.", times=None))
    (first,) = window()
    gce_sim.clear_faults()
    (again,) = window()  # Airflow retried the step: the FAILED snapshots of the first try are still there
    assert first["error_step"] == "wait_snapshots_taken"
    assert "Quota 'SNAPSHOTS'" in str(first["error"])
    assert again["error_step"] == "wait_snapshots_taken"
    assert f"FAILED ({EARLIER_TRY_NOTE})" in str(again["error"])
    assert len(stops(gce_sim)) == 1
    assert ends_as_it_began(gce_sim, hook, target)


def test_a_window_that_waited_for_one_still_going_reports_what_that_one_did(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook, target: Target, window: Callable[..., list[VmWindow]]
) -> None:
    gce_sim.set_profile(retaining())
    gce_sim.inject(Fault.slow("instances.stop", LONG))  # the first window stops the VM until the second arrives
    gce_sim.inject(Fault.operation_error("disks.createSnapshot", "QUOTA_EXCEEDED", "Quota 'SNAPSHOTS'.", times=None))
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(window)
        wait_until(lambda: stops(gce_sim), what="the first window's stop", interval=0.01)
        second = pool.submit(window)  # a re-created trigger of the same run, in the same triggerer
        wait_until(lambda: windows_at(target, FULL) == 2, what="the second window waiting for the first's seat")
        stepped_until(gce_sim, lambda: operation_done(gce_sim, "stop", DB_VM), "the first window's stop DONE")
        ((one,), (two,)) = first.result(), second.result()
    assert "Quota 'SNAPSHOTS'" in str(one["error"])
    assert two == one
    assert len(stops(gce_sim)) == 1
    assert ends_as_it_began(gce_sim, hook, target)


def test_a_vm_stopped_before_the_window_stays_stopped_and_is_snapshotted(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook, policy: BackupPolicy, target: Target
) -> None:
    gce_sim.add_instance(GCE_PROJECT, "us-central1-a", "cold-1", status="TERMINATED")
    spec = {"project": GCE_PROJECT, "instances": [{"name": "cold-1", "zone": "us-central1-a"}]}
    cold = parse_policy("team-a", "cold", spec)
    (cold_target,) = resolve_targets(cold, "manual__cold", hook)["groups"]["instances"]
    for _ in range(2):
        (vm,) = run_window(
            hook,
            cold,
            [cold_target],
            None,
            FULL,
            max_unavailable=1,
            project_limit=4,
            poll_seconds=0.05,
            lock_ttl_seconds=600,
        )
        assert vm["error"] is None
        assert vm["stopped"] is False
    assert hook.get_instance(GCE_PROJECT, "us-central1-a", "cold-1").status == "TERMINATED"
    assert stops(gce_sim) == []
    assert len(our_snapshots(gce_sim, cold_target)) == 1


def test_a_rolling_batch_has_at_most_max_unavailable_vms_down_at_once(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook
) -> None:
    from bench.workflow import instance_down_intervals

    names = ["roll-1", "roll-2", "roll-3"]
    for name in names:
        gce_sim.add_instance(GCE_PROJECT, "us-central1-d", name, labels={"app": "roll"})
    spec = {"project": GCE_PROJECT, "selector": {"zones": ["us-central1-d"], "matchLabels": {"app": "roll"}}}
    rolling = parse_policy("team-a", "rolling", {**spec, "maxUnavailable": "34%"})
    targets = resolve_targets(rolling, "manual__rolling", hook)["groups"]["instances"]
    cap = rolling.spec.unavailable_cap(len(targets))
    vms = run_window(
        hook,
        rolling,
        targets,
        None,
        FULL,
        max_unavailable=cap,
        project_limit=4,
        poll_seconds=0.05,
        lock_ttl_seconds=600,
    )
    assert [vm["error"] for vm in vms] == [None, None, None]
    intervals = sorted(
        (down, up) for _, down, up in instance_down_intervals(gce_sim.operations(), "us-central1-d", names)
    )
    assert len(intervals) == 3
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(intervals))


# -- calls: what the window's own DONE operations say is not read again -------------------------------------------


def calls_to(sim: ComputeSimulator, method: str) -> list[dict[str, Any]]:
    return [c for c in sim.calls if c["method"] == method and c["status"] == 200]


def test_a_window_reads_the_vm_before_and_after_its_lock_and_never_after_its_own_done_operations(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook, window: Callable[..., list[VmWindow]]
) -> None:
    gce_sim.clear_calls()
    (vm,) = window()
    assert vm["error"] is None
    assert len(calls_to(gce_sim, "instances.get")) == 2
    assert len(calls_to(gce_sim, "instances.setLabels")) == 2  # the lock and the release, nothing read between
    assert calls_to(gce_sim, "snapshots.get")  # the cuts' CREATING looks: only the cuts are looked at


def test_a_label_its_owner_set_while_the_vm_was_down_is_kept_and_the_lock_released(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook, target: Target, window: Callable[..., list[VmWindow]]
) -> None:
    from google.cloud import compute_v1

    from devstack.gce_simulator import compute_client

    def owner_labels_it() -> None:  # while our cuts are CREATING: our release's fingerprint is stale then
        wait_until(lambda: len(calls_to(gce_sim, "disks.createSnapshot")) == 2, what="the window's cuts")
        client = compute_client(compute_v1.InstancesClient, gce_sim.base_url)
        inst = client.get(project=GCE_PROJECT, zone=DB["zone"], instance=DB["name"])
        body = compute_v1.InstancesSetLabelsRequest(
            labels={**inst.labels, "owner": "set-meanwhile"}, label_fingerprint=inst.label_fingerprint
        )
        client.set_labels(
            project=GCE_PROJECT, zone=DB["zone"], instance=DB["name"], instances_set_labels_request_resource=body
        )
        stepped_until(gce_sim, lambda: cuts_taken(gce_sim, target), "the window's cuts taken")

    gce_sim.set_profile(retaining())
    gce_sim.inject(Fault.slow("disks.createSnapshot", LONG, times=None))  # CREATING until the owner has labelled
    with ThreadPoolExecutor(1) as pool:
        labelling = pool.submit(owner_labels_it)
        (vm,) = window()
        labelling.result()
    assert vm["error"] is None
    labels = hook.get_instance(GCE_PROJECT, DB["zone"], DB["name"]).labels
    assert labels["owner"] == "set-meanwhile"
    assert vmlabels.LOCK not in labels
    assert ends_as_it_began(gce_sim, hook, target)


def test_a_spot_vm_preempted_between_our_lock_and_the_stop_is_started_again(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook, target: Target, window: Callable[..., list[VmWindow]]
) -> None:
    gce_sim.apply_preset("spot_vms")
    gce_sim.inject(Fault.slow("instances.setLabels", LONG, target=DB["name"]))  # our lock: until it is preempted

    def preempt_once_locking() -> None:
        wait_until(lambda: calls_to(gce_sim, "instances.setLabels"), what="the window's lock")
        gce_sim.preempt(GCE_PROJECT, DB["zone"], DB["name"])
        stepped_until(gce_sim, lambda: operation_done(gce_sim, "setLabels", DB_VM), "the window's lock DONE")

    with ThreadPoolExecutor(1) as pool:
        preempting = pool.submit(preempt_once_locking)
        (vm,) = window()
        preempting.result()
    assert vm["error"] is None
    assert "preempted" in (vm.get("note") or "")
    assert stops(gce_sim) == []  # nothing to stop: Compute Engine had stopped it
    assert len(our_snapshots(gce_sim, target)) == 2
    assert ends_as_it_began(gce_sim, hook, target)  # it was RUNNING when the run began


# -- reservations: a policy that requires one stops only VMs whose capacity is held -----------------------------


def test_a_required_reservation_backs_up_the_reserved_vm_through_a_stockout_and_skips_the_other(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook
) -> None:
    zone = "us-central1-d"
    gce_sim.add_reservation(GCE_PROJECT, zone, "db-capacity", count=1, specific_reservation_required=True)
    affinity = {
        "consumeReservationType": "SPECIFIC_RESERVATION",
        "key": "compute.googleapis.com/reservation-name",
        "values": ["db-capacity"],
    }
    gce_sim.add_instance(GCE_PROJECT, zone, "reserved-1", reservation_affinity=affinity)
    gce_sim.add_instance(GCE_PROJECT, zone, "unreserved-1")
    spec = {
        "project": GCE_PROJECT,
        "instances": [{"name": "reserved-1", "zone": zone}, {"name": "unreserved-1", "zone": zone}],
        "stop": {"requireReservation": True},
    }
    reserved = parse_policy("team-a", "reserved", spec)
    resolution = resolve_targets(reserved, "manual__reserved", hook)
    assert [t["instance"] for t in resolution["groups"]["instances"]] == ["reserved-1"]
    (skipped,) = resolution["skipped"]
    assert skipped["instance"] == "unreserved-1"
    assert "spec.stop.requireReservation" in skipped["reason"]

    gce_sim.stockout(zone, 3600)  # the zone has no capacity for an hour from now: only the reservation's is left
    (vm,) = run_window(
        hook,
        reserved,
        resolution["groups"]["instances"],
        None,
        FULL,
        max_unavailable=1,
        project_limit=4,
        poll_seconds=0.05,
        lock_ttl_seconds=600,
    )
    assert vm["error"] is None
    assert vm["stopped"] is True
    assert "stockout" not in (vm.get("note") or "")
    assert hook.get_instance(GCE_PROJECT, zone, "reserved-1").status == "RUNNING"
