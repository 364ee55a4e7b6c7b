"""Helpers of the VM layer's tests: the state a run of ours leaves when it could not start a VM again, and one down
window of a VM, both through the real client."""

from __future__ import annotations

from typing import Any

from tests.fixtures.gce import GCE_PROJECT
from vmbackup.backup.down_window import FULL, VmWindow, run_window
from vmbackup.backup.resolution import Target, resolve_targets
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.model.policy import BackupPolicy, parse_policy
from vmbackup.vm.lock import VmRef, acquire_lock, release_lock

ZONE = "us-central1-a"
STOCKOUT = "ZONE_RESOURCE_POOL_EXHAUSTED"


def left_stopped_by(hook: ComputeEngineHook, run: str, name: str = "db-1") -> VmRef:
    """What a run that stopped `name` and could not start it leaves: the VM TERMINATED, the mark, no lock."""
    ref = VmRef(project=GCE_PROJECT, zone=ZONE, instance=name, run=run)
    acquire_lock(hook, ref, 600)
    hook.wait_done(hook.stop_instance(GCE_PROJECT, ZONE, name), 60)
    release_lock(hook, ref)
    return ref


def promise_policy(name: str = "db-1", **spec: Any) -> BackupPolicy:
    return parse_policy(
        "team-a", "promise", {"project": GCE_PROJECT, "instances": [{"name": name, "zone": ZONE}], **spec}
    )


def promise_target(hook: ComputeEngineHook, policy: BackupPolicy) -> Target:
    (target,) = resolve_targets(policy, "manual__promise", hook)["groups"]["instances"]
    return target


def window(hook: ComputeEngineHook, name: str = "db-1", **spec: Any) -> VmWindow:
    """One down window of `name` under a one-VM policy (spec overrides), as the run's down_window step runs it."""
    policy = promise_policy(name, **spec)
    (vm,) = run_window(
        hook,
        policy,
        [promise_target(hook, policy)],
        None,
        FULL,
        max_unavailable=1,
        project_limit=4,
        poll_seconds=0.05,
        lock_ttl_seconds=600,
    )
    return vm
