"""The VM layer's fixtures: the simulator through the real client, db-1 as the VM, and the state a run leaves."""

from __future__ import annotations

import pytest

from devstack.gce_simulator import ComputeSimulator
from tests.fixtures.gce import GCE_PROJECT
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.vm.lock import VmRef, acquire_lock, release_lock

ZONE = "us-central1-a"
STOCKOUT = "ZONE_RESOURCE_POOL_EXHAUSTED"


@pytest.fixture
def hook(gce_sim: ComputeSimulator) -> ComputeEngineHook:
    return ComputeEngineHook(endpoint=gce_sim.base_url, backoff_base_seconds=0.01)


def left_stopped_by(hook: ComputeEngineHook, run: str, name: str = "db-1") -> VmRef:
    """What a run that stopped `name` and could not start it leaves: the VM TERMINATED, the mark, no lock."""
    ref = VmRef(project=GCE_PROJECT, zone=ZONE, instance=name, run=run)
    acquire_lock(hook, ref, 600)
    hook.wait_done(hook.stop_instance(GCE_PROJECT, ZONE, name), 60)
    release_lock(hook, ref)
    return ref
