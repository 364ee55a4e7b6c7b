"""Compute Engine's power states as they are: PENDING_STOP under graceful shutdown, SUSPENDED, Spot preemption.

The simulator seeds them (devstack/gce_simulator/power.py): a VM with graceful shutdown stays PENDING_STOP for its
maxDuration (scaled by the fast profile's api_duration_scale), a SUSPENDED one comes back only with resume.
"""

from __future__ import annotations

from devstack.gce_simulator import ComputeSimulator
from tests.fixtures.gce import GCE_PROJECT, GceClients
from tests.fixtures.waits import wait_until
from tests.plugins.vmbackup.vm.left_stopped import ZONE
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.vm.lock import VmRef, acquire_lock, release_lock
from vmbackup.vm.power import grace_seconds, start_until_running, stop_until_stopped

GRACE_SECONDS = 3600  # the instance says an hour; the fast profile plays it as 3.6 s


def graceful_vm(sim: ComputeSimulator) -> str:
    sim.add_instance(GCE_PROJECT, ZONE, "graceful-1", graceful_shutdown_seconds=GRACE_SECONDS)
    return "graceful-1"


def test_a_stop_waits_out_pending_stop_beyond_the_stop_timeout(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook
) -> None:
    name = graceful_vm(gce_sim)
    assert grace_seconds(hook.get_instance(GCE_PROJECT, ZONE, name)) == GRACE_SECONDS
    stop_until_stopped(hook, GCE_PROJECT, ZONE, name, timeout_seconds=1, poll_seconds=0.05, timeout_field="test")
    assert hook.get_instance(GCE_PROJECT, ZONE, name).status == "TERMINATED"


def test_a_start_waits_for_pending_stop_to_end_first(gce_sim: ComputeSimulator, hook: ComputeEngineHook) -> None:
    name = graceful_vm(gce_sim)
    hook.stop_instance(GCE_PROJECT, ZONE, name)
    wait_until(
        lambda: hook.get_instance(GCE_PROJECT, ZONE, name).status == "PENDING_STOP", within=10, what="PENDING_STOP"
    )
    start_until_running(hook, GCE_PROJECT, ZONE, name, timeout_seconds=30, poll_seconds=0.05, timeout_field="test")
    assert hook.get_instance(GCE_PROJECT, ZONE, name).status == "RUNNING"


def test_a_suspended_vm_we_hold_is_resumed_not_started(
    gce_sim: ComputeSimulator, gce_clients: GceClients, hook: ComputeEngineHook
) -> None:
    ref = VmRef(project=GCE_PROJECT, zone=ZONE, instance="db-1", run="rold")
    acquire_lock(hook, ref, 600)
    op = gce_clients.instances.suspend_unary(project=GCE_PROJECT, zone=ZONE, instance="db-1")
    gce_clients.zone_operations.wait(project=GCE_PROJECT, zone=ZONE, operation=op.name)
    release_lock(hook, ref)
    gce_sim.clear_calls()
    start_until_running(hook, GCE_PROJECT, ZONE, "db-1", timeout_seconds=30, poll_seconds=0.05, timeout_field="test")
    methods = [c["method"] for c in gce_sim.calls if c["status"] == 200]
    assert hook.get_instance(GCE_PROJECT, ZONE, "db-1").status == "RUNNING"
    assert "instances.resume" in methods
    assert "instances.start" not in methods
