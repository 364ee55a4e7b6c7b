"""Quota and busy-resource refusals waited out to the next quota window; other 403s and 400s fail at once.

The quota window is shrunk (AirflowSettings.quota_window_seconds) so that "the next minute" comes in a fraction of
a second; the refusals come from the simulator through the real google-cloud-compute client.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from devstack.gce_simulator import ComputeSimulator, Fault, Profile
from devstack.gce_simulator.quotas import RATE_GROUPS, quota_group
from tests.fixtures.clock_steps import LONG, ended_once, retaining
from tests.fixtures.gce import GCE_PROJECT
from tests.fixtures.waits import wait_until
from vmbackup.backup.down_window import FULL, run_window
from vmbackup.backup.resolution import resolve_targets
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.model.policy import parse_policy
from vmbackup.settings import AirflowSettings

ZONE = "us-central1-c"
VM = "wordpress-1-vm"
WINDOW = 0.3  # the shrunk "minute"
NO_REFILL = 10.0**9  # a simulated minute that does not end while a test runs
QUOTA_DEADLINE = 600.0  # refusals waited out for as long as a loaded machine may take to refill the quota
HANG = 60.0  # seconds past a deadline that only a hang takes
ZONAL_WRITES = "zonal_write_requests"


def quota_hook(sim: ComputeSimulator, deadline: float = QUOTA_DEADLINE) -> ComputeEngineHook:
    settings = AirflowSettings(quota_window_seconds=WINDOW, quota_deadline_seconds=deadline)
    return ComputeEngineHook(endpoint=sim.base_url, backoff_base_seconds=0.01, settings=settings)


def rate_limited(method: str, times: int | None = 1) -> Fault:
    return Fault.http_error(method, 403, reason="rateLimitExceeded", message="Rate Limit Exceeded", times=times)


def test_a_rate_limited_first_write_does_not_fail_the_backup(gce_sim: ComputeSimulator) -> None:
    hook = quota_hook(gce_sim)
    gce_sim.inject(rate_limited("instances.setLabels"))  # the window's first write: the lock label
    vm = backup_once(hook, {"name": VM, "zone": ZONE})
    assert vm["error"] is None
    assert hook.get_instance(GCE_PROJECT, ZONE, VM).status == "RUNNING"
    assert gce_sim.check_left_stopped() == []


def backup_once(hook: ComputeEngineHook, vm: dict[str, str]) -> dict[str, Any]:
    policy = parse_policy("team-a", "quota", {"project": GCE_PROJECT, "instances": [vm]})
    (target,) = resolve_targets(policy, "manual__quota", hook)["groups"]["instances"]
    (window,) = run_window(
        hook, policy, [target], None, FULL, max_unavailable=1, project_limit=4, poll_seconds=0.05, lock_ttl_seconds=600
    )
    return dict(window)


def test_a_per_minute_quota_of_three_writes_is_waited_out_and_the_vm_runs_again(gce_sim: ComputeSimulator) -> None:
    """Lock, stop, cut, start, unlock: five zonal writes against a quota of three a minute.

    The simulator's minute does not end on its own here: the fourth write (the start) is refused for certain,
    and the quota refills when the test says so, once that refusal was answered. The hook waits refusals out to
    its own (shrunk) windows meanwhile.
    """
    gce_sim.set_profile(Profile.fast(rate_quota_window_seconds=NO_REFILL))
    gce_sim.set_rate_quota(ZONAL_WRITES, 3)
    hook = quota_hook(gce_sim)
    with ThreadPoolExecutor(1) as pool:
        backup = pool.submit(backup_once, hook, {"name": VM, "zone": ZONE})
        wait_until(lambda: refused_writes(gce_sim), what="a zonal write refused for the quota")
        gce_sim.set_rate_quota(ZONAL_WRITES, RATE_GROUPS[ZONAL_WRITES][2])  # the next minute: refilled
        vm = backup.result()
    assert vm["error"] is None
    assert hook.get_instance(GCE_PROJECT, ZONE, VM).status == "RUNNING"
    assert gce_sim.check_left_stopped() == []
    assert refused_writes(gce_sim)  # the quota did bind


def refused_writes(sim: ComputeSimulator) -> list[dict[str, Any]]:
    return [c for c in sim.calls if c["status"] == 403 and quota_group(c["method"]) == ZONAL_WRITES]


def test_the_concurrent_operations_quota_is_waited_out(gce_sim: ComputeSimulator) -> None:
    """One operation in flight per project: the second disk's cut waits until the first snapshot is READY.

    The first cut stays CREATING until the test ends it, once the second was refused."""
    hook = ComputeEngineHook(endpoint=gce_sim.base_url, backoff_base_seconds=0.01)
    gce_sim.set_profile(retaining(concurrent_operations_limit=1))
    gce_sim.inject(Fault.slow("disks.createSnapshot", LONG, times=1))

    def refused() -> list[str]:
        return [c["method"] for c in gce_sim.calls if c["status"] == 403]

    def first_cut_ready() -> bool:
        cuts = [op for op in gce_sim.operations() if op["operationType"] == "createSnapshot"]
        return bool(cuts) and cuts[0]["status"] == "DONE"

    with ended_once(gce_sim, refused, first_cut_ready, "the first cut READY"):
        vm = backup_once(hook, {"name": "db-1", "zone": "us-central1-a"})
    assert vm["error"] is None
    assert len(vm["snapshots"]) == 2
    # The quota did bind on the second cut (the start may meet it too, while the second snapshot still uploads)
    assert "disks.createSnapshot" in refused()
    assert hook.get_instance(GCE_PROJECT, "us-central1-a", "db-1").status == "RUNNING"


def test_a_rate_limited_call_is_retried_after_the_window_boundary(gce_sim: ComputeSimulator) -> None:
    hook = quota_hook(gce_sim)
    gce_sim.inject(rate_limited("instances.stop"))
    refused_at = time.time()
    hook.stop_instance(GCE_PROJECT, ZONE, VM)
    stops = [c for c in gce_sim.calls if c["method"] == "instances.stop"]
    assert [c["status"] for c in stops] == [403, 200]
    boundary = (refused_at // WINDOW + 1) * WINDOW
    assert float(stops[1]["time"]) >= boundary - 0.01


def test_a_busy_resource_is_waited_out(gce_sim: ComputeSimulator) -> None:
    hook = quota_hook(gce_sim)
    gce_sim.inject(Fault.http_error("instances.stop", 400, reason="resourceNotReady", times=1))
    hook.stop_instance(GCE_PROJECT, ZONE, VM)
    assert gce_sim.call_counts()["instances.stop"] == 2


def test_a_missing_permission_fails_at_once_with_its_message(gce_sim: ComputeSimulator) -> None:
    hook = quota_hook(gce_sim)
    message = "Required 'compute.instances.stop' permission for 'projects/demo-project'"
    gce_sim.inject(Fault.http_error("instances.stop", 403, reason="forbidden", message=message, times=None))
    with pytest.raises(gexc.Forbidden, match=re.escape(message)):
        hook.stop_instance(GCE_PROJECT, ZONE, VM)
    assert gce_sim.call_counts()["instances.stop"] == 1


def test_another_bad_request_fails_at_once(gce_sim: ComputeSimulator) -> None:
    hook = quota_hook(gce_sim)
    gce_sim.inject(Fault.http_error("instances.stop", 400, reason="invalid", times=None))
    with pytest.raises(gexc.BadRequest):
        hook.stop_instance(GCE_PROJECT, ZONE, VM)
    assert gce_sim.call_counts()["instances.stop"] == 1


def test_quota_waits_end_at_the_deadline(gce_sim: ComputeSimulator) -> None:
    hook = quota_hook(gce_sim, deadline=1.0)
    gce_sim.inject(rate_limited("instances.get", times=None))
    started = time.monotonic()
    with pytest.raises(gexc.Forbidden):
        hook.get_instance(GCE_PROJECT, ZONE, VM)
    assert time.monotonic() - started < 1.0 + WINDOW + HANG  # a hang (or the default 300 s deadline), not a pace
    # Each retry comes after a window boundary of its own, before the deadline: at most 4 in 1 s of 0.3 s windows
    assert 2 <= gce_sim.call_counts()["instances.get"] <= 5


def test_a_quota_refusal_is_transient_whatever_the_error_info(gce_sim: Any) -> None:
    """A 403 whose errors[].reason is rateLimitExceeded (the rate quota and the concurrent-operations quota alike)."""
    hook = quota_hook(gce_sim)
    gce_sim.inject(rate_limited("disks.createSnapshot", times=2))
    ref = hook.create_snapshot(GCE_PROJECT, ZONE, VM, "snap-q", labels={}, storage_location=None, guest_flush=False)
    assert ref is not None
    assert gce_sim.call_counts()["disks.createSnapshot"] == 3
