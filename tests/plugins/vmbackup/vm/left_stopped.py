"""The state a run of ours leaves on db-1 when it could not start it again, made through the real client."""

from __future__ import annotations

from tests.fixtures.gce import GCE_PROJECT
from vmbackup.compute.hook import ComputeEngineHook
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
