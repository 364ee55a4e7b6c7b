"""Compute Engine's power states as they are: PENDING_STOP under graceful shutdown, SUSPENDED, Spot preemption.

The simulator seeds them (devstack/gce_simulator/power.py): a VM with graceful shutdown stays PENDING_STOP for its
maxDuration (scaled by the fast profile's api_duration_scale), a SUSPENDED one comes back only with resume.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from devstack.gce_simulator import ComputeSimulator
from tests.fixtures.gce import GCE_PROJECT, GceClients, step_until
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
    """The VM stays PENDING_STOP (the clock held) until the start has looked at it; a start asked for meanwhile
    would be refused (400 resourceNotReady: the stop is in flight), so every one answered must have come after."""
    name = graceful_vm(gce_sim)

    def status() -> str:
        return str(hook.get_instance(GCE_PROJECT, ZONE, name).status)

    with ThreadPoolExecutor(1) as pool, gce_sim.clock_held() as step:  # the clock runs again before the join
        hook.stop_instance(GCE_PROJECT, ZONE, name)
        step_until(step, lambda: status() == "PENDING_STOP", "PENDING_STOP")
        looks = len(gets(gce_sim, name))
        starting = pool.submit(
            start_until_running,
            hook,
            GCE_PROJECT,
            ZONE,
            name,
            timeout_seconds=600,
            poll_seconds=0.05,
            timeout_field="test",
        )
        wait_until(lambda: len(gets(gce_sim, name)) > looks, what="the start's look at the VM PENDING_STOP")
        step_until(step, lambda: status() == "TERMINATED", "TERMINATED")
    starting.result()
    assert status() == "RUNNING"
    assert [c["status"] for c in gce_sim.calls if c["method"] == "instances.start"] == [200]


def gets(sim: ComputeSimulator, name: str) -> list[dict[str, Any]]:
    return [c for c in sim.calls if c["method"] == "instances.get" and c["params"].get("instance") == name]


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
