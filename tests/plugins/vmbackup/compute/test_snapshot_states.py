"""The snapshot waits' reads: a purged creation operation (404) does not fail a READY snapshot; a DONE one is read once."""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core import exceptions as gexc

from devstack.gce_simulator import ComputeSimulator, Fault
from tests.fixtures.clock_steps import stepped_until
from tests.fixtures.gce import GCE_PROJECT
from tests.fixtures.waits import wait_until
from vmbackup.compute.hook import (
    READY,
    ComputeEngineHook,
    OperationFailedError,
    OperationRef,
    SnapshotFailedError,
    pending_snapshots,
)

ZONE = "us-central1-c"
VM = "wordpress-1-vm"


@pytest.fixture
def hook(gce_sim: ComputeSimulator) -> ComputeEngineHook:
    return ComputeEngineHook(endpoint=gce_sim.base_url, max_attempts=2, backoff_base_seconds=0.001)


def ready_snapshot(hook: ComputeEngineHook, name: str) -> dict[str, Any]:
    """A snapshot of the VM's disk made through disks.createSnapshot, READY, as the wait's item."""
    ref = hook.create_snapshot(GCE_PROJECT, ZONE, VM, name, labels={}, storage_location=None, guest_flush=False)
    assert ref is not None
    hook.wait_done(ref, 30)
    return {"name": name, "disk": VM, "operation": ref}


def purge(sim: ComputeSimulator, ref: OperationRef) -> None:
    """The operation past its retention period: every get of it answers 404, as Compute Engine does then."""
    sim.inject(Fault.http_error("zoneOperations.get", 404, target=ref["name"], times=None))


def test_a_ready_snapshot_whose_operation_was_purged_is_ready(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook
) -> None:
    item = ready_snapshot(hook, "purged-1")
    purge(gce_sim, item["operation"])
    later = ComputeEngineHook(endpoint=gce_sim.base_url)  # a later poll: a new trigger or sensor look
    assert pending_snapshots(later.snapshot_states(GCE_PROJECT, [item]), READY) == {}
    assert gce_sim.call_counts()["zoneOperations.get"] == 1  # asked once, 404, the snapshot's READY stands


def test_a_done_operation_is_read_once_across_polls(gce_sim: ComputeSimulator, hook: ComputeEngineHook) -> None:
    item = ready_snapshot(hook, "done-1")
    for _ in range(3):
        assert hook.snapshot_states(GCE_PROJECT, [item]) == {"done-1": "READY"}
    assert gce_sim.call_counts().get("zoneOperations.get", 0) == 1


def test_a_failed_creation_still_fails_the_wait(gce_sim: ComputeSimulator, hook: ComputeEngineHook) -> None:
    gce_sim.inject(Fault.operation_error("disks.createSnapshot", "INTERNAL_ERROR", "The snapshot broke."))
    ref = hook.create_snapshot(GCE_PROJECT, ZONE, VM, "bad-1", labels={}, storage_location=None, guest_flush=False)
    assert ref is not None
    with pytest.raises(OperationFailedError):
        hook.wait_done(ref, 30)
    with pytest.raises(SnapshotFailedError, match="The snapshot broke"):
        hook.snapshot_states(GCE_PROJECT, [{"name": "bad-1", "disk": VM, "operation": ref}])


def test_the_ready_wait_survives_the_simulators_purging(gce_sim: ComputeSimulator, hook: ComputeEngineHook) -> None:
    item = ready_snapshot(hook, "purged-2")
    later = ComputeEngineHook(endpoint=gce_sim.base_url)
    # The retention period ends now, not while the creation is still waited for: the simulator's own purge
    stepped_until(gce_sim, lambda: gone(later, item["operation"]), "the creation operation purged")
    assert later.snapshot_states(GCE_PROJECT, [item]) == {"purged-2": "READY"}
    assert later.ready_states(GCE_PROJECT, [item]) == {"purged-2": "READY"}


def gone(hook: ComputeEngineHook, ref: OperationRef) -> bool:
    try:
        hook.get_operation(ref)
    except gexc.NotFound:
        return True
    return False


def test_the_ready_states_read_the_snapshot_only_when_its_creation_is_not_known(
    gce_sim: ComputeSimulator, hook: ComputeEngineHook
) -> None:
    known = ready_snapshot(hook, "known")
    wait_until(lambda: hook.find_snapshot(GCE_PROJECT, "known"), what="the first snapshot")
    ref = hook.create_snapshot(
        GCE_PROJECT, "us-central1-a", "web-1", "unknown", labels={}, storage_location=None, guest_flush=False
    )
    assert ref is not None
    hook.wait_done(ref, 30)
    items = [known, {"name": "unknown", "disk": "web-1", "operation": None}]  # its operation is not known
    gce_sim.clear_calls()
    assert hook.ready_states(GCE_PROJECT, items) == {"known": "READY", "unknown": "READY"}
    assert gce_sim.call_counts().get("snapshots.get") == 1  # "unknown" only: "known"'s DONE creation vouches for it
