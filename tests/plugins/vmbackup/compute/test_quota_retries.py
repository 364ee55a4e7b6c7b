"""Quota and busy-resource refusals waited out to the next quota window; other 403s and 400s fail at once.

The quota window is shrunk (AirflowSettings.quota_window_seconds) so that "the next minute" comes in a fraction of
a second; the refusals come from the simulator through the real google-cloud-compute client.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from devstack.gce_simulator import ComputeSimulator, Fault, Profile
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


def quota_hook(sim: ComputeSimulator, deadline: float = 5.0) -> ComputeEngineHook:
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
    """Lock, stop, cut, start, unlock: five zonal writes against a quota of three a (simulated, 3 s) minute.

    The backup starts with a window, so that its writes (well under a second apart) meet the quota in it.
    """
    window = 3.0
    gce_sim.set_profile(Profile.fast(rate_quota_window_seconds=window))
    gce_sim.set_rate_quota("zonal_write_requests", 3)
    settings = AirflowSettings(quota_window_seconds=window)
    hook = ComputeEngineHook(endpoint=gce_sim.base_url, backoff_base_seconds=0.01, settings=settings)
    wait_until(lambda: time.time() % window < 0.2, within=2 * window, what="a window's start", interval=0.02)
    vm = backup_once(hook, {"name": VM, "zone": ZONE})
    assert vm["error"] is None
    assert hook.get_instance(GCE_PROJECT, ZONE, VM).status == "RUNNING"
    assert gce_sim.check_left_stopped() == []
    assert any(c["status"] == 403 for c in gce_sim.calls)  # the quota did bind


def test_the_concurrent_operations_quota_is_waited_out(gce_sim: ComputeSimulator) -> None:
    """One operation in flight per project: the second disk's cut waits until the first snapshot is READY."""
    hook = ComputeEngineHook(endpoint=gce_sim.base_url, backoff_base_seconds=0.01)
    gce_sim.set_profile(Profile.fast(concurrent_operations_limit=1))
    gce_sim.inject(Fault.slow("disks.createSnapshot", 0.5, times=1))  # the first cut still in flight at the second
    vm = backup_once(hook, {"name": "db-1", "zone": "us-central1-a"})
    assert vm["error"] is None
    assert len(vm["snapshots"]) == 2
    assert [c["method"] for c in gce_sim.calls if c["status"] == 403]  # the quota did bind
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
    assert time.monotonic() - started < 1.0 + WINDOW * 1.2
    assert 2 <= gce_sim.call_counts()["instances.get"] <= 5


def test_a_quota_refusal_is_transient_whatever_the_error_info(gce_sim: Any) -> None:
    """A 403 whose errors[].reason is rateLimitExceeded (the rate quota and the concurrent-operations quota alike)."""
    hook = quota_hook(gce_sim)
    gce_sim.inject(rate_limited("disks.createSnapshot", times=2))
    ref = hook.create_snapshot(GCE_PROJECT, ZONE, VM, "snap-q", labels={}, storage_location=None, guest_flush=False)
    assert ref is not None
    assert gce_sim.call_counts()["disks.createSnapshot"] == 3
