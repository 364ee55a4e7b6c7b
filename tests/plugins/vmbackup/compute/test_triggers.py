"""OperationStatusTrigger: the deferrable sensor's wait, run as the triggerer runs it (asyncio)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from devstack.gce_simulator import Fault
from vmbackup.compute.hook import ComputeEngineHook

pytestmark = pytest.mark.airflow

PROJECT = "demo-project"
ZONE = "us-central1-c"
VM = "wordpress-1-vm"


async def first_event(trigger: Any) -> Any:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger ended without an event")


async def test_trigger_fires_when_the_operation_is_done(gce_sim: Any) -> None:
    from vmbackup.compute.triggers import OperationStatusTrigger

    gce_sim.inject(Fault.slow("instances.stop", 0.3))
    ref = ComputeEngineHook(endpoint=gce_sim.base_url).stop_instance(PROJECT, ZONE, VM)
    payload = await first_event(OperationStatusTrigger(operation=dict(ref), endpoint=gce_sim.base_url))
    assert payload == {"status": "done", "operation_ref": dict(ref), "error": None}
    assert gce_sim.instance(PROJECT, ZONE, VM)["status"] == "TERMINATED"


async def test_trigger_reports_compute_engines_error(gce_sim: Any) -> None:
    from vmbackup.compute.triggers import OperationStatusTrigger

    gce_sim.inject(Fault.operation_error("instances.stop", "QUOTA_EXCEEDED", "Quota exceeded."))
    ref = ComputeEngineHook(endpoint=gce_sim.base_url).stop_instance(PROJECT, ZONE, VM)
    payload = await first_event(OperationStatusTrigger(operation=dict(ref), endpoint=gce_sim.base_url))
    assert payload["error"] == "QUOTA_EXCEEDED: Quota exceeded."


def test_trigger_serializes_to_its_import_path_and_plain_data() -> None:
    from vmbackup.compute.triggers import OperationStatusTrigger

    ref = {"name": "operation-1", "project": PROJECT, "zone": ZONE}
    path, kwargs = OperationStatusTrigger(operation=ref, endpoint="http://127.0.0.1:1").serialize()
    assert path == "vmbackup.compute.triggers.OperationStatusTrigger"
    assert OperationStatusTrigger(**kwargs).serialize() == (path, kwargs)


def start_snapshot(gce_sim: Any, name: str) -> list[dict[str, Any]]:
    hook = ComputeEngineHook(endpoint=gce_sim.base_url)
    ref = hook.create_snapshot(PROJECT, ZONE, VM, name, labels={}, storage_location=None, guest_flush=False)
    assert ref is not None
    return [{"name": name, "disk": VM, "operation": dict(ref)}]


async def test_snapshot_trigger_fires_once_every_snapshot_is_taken(gce_sim: Any) -> None:
    from vmbackup.compute.triggers import SnapshotStatusTrigger

    gce_sim.inject(Fault.slow("disks.createSnapshot", 0.3))
    items = start_snapshot(gce_sim, "snap-taken")
    trigger = SnapshotStatusTrigger(items, PROJECT, "taken", endpoint=gce_sim.base_url, poll_seconds=0.05)
    payload = await first_event(trigger)
    assert payload["status"] == "done"
    assert payload["states"]["snap-taken"] in ("UPLOADING", "READY")


async def test_the_ready_wait_long_polls_the_upload_and_reads_no_snapshot_its_done_creation_vouches_for(
    gce_sim: Any,
) -> None:
    from vmbackup.compute.triggers import SnapshotStatusTrigger

    gce_sim.inject(Fault.slow("disks.createSnapshot", 0.5))
    items = start_snapshot(gce_sim, "snap-ready")
    gce_sim.clear_calls()
    trigger = SnapshotStatusTrigger(items, PROJECT, "ready", endpoint=gce_sim.base_url, poll_seconds=0.05)
    payload = await first_event(trigger)
    assert payload == {"status": "done", "states": {"snap-ready": "READY"}}
    counts = gce_sim.call_counts()
    assert (counts.get("snapshots.get", 0), counts.get("zoneOperations.get", 0)) == (0, 0)
    assert counts["zoneOperations.wait"] >= 1


async def test_snapshot_trigger_reports_compute_engines_error(gce_sim: Any) -> None:
    from vmbackup.compute.triggers import SnapshotStatusTrigger

    gce_sim.inject(Fault.operation_error("disks.createSnapshot", "QUOTA_EXCEEDED", "Quota 'SNAPSHOTS' exceeded."))
    items = start_snapshot(gce_sim, "snap-failed")
    trigger = SnapshotStatusTrigger(items, PROJECT, "ready", endpoint=gce_sim.base_url, poll_seconds=0.05)
    payload = await first_event(trigger)
    assert payload["status"] == "error"
    assert "Quota 'SNAPSHOTS' exceeded." in payload["message"]


async def test_triggers_do_not_queue_behind_the_event_loops_shared_threads(gce_sim: Any) -> None:
    """Other triggers' blocking calls fill the loop's default executor; ours must still get a thread."""
    from vmbackup.compute.triggers import SnapshotStatusTrigger

    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
    release = threading.Event()
    busy = loop.run_in_executor(None, release.wait)  # the one shared thread, held as a long-poll would hold it
    try:
        items = start_snapshot(gce_sim, "snap-busy-loop")
        trigger = SnapshotStatusTrigger(items, PROJECT, "taken", endpoint=gce_sim.base_url, poll_seconds=0.05)
        payload = await asyncio.wait_for(first_event(trigger), timeout=60)  # a safety net, not a speed check
        assert payload["status"] == "done"
    finally:
        release.set()
        await busy


def test_snapshot_trigger_serializes_to_its_import_path_and_plain_data() -> None:
    from vmbackup.compute.triggers import SnapshotStatusTrigger

    items = [{"name": "snap-1", "disk": VM, "operation": {"name": "operation-1", "project": PROJECT, "zone": ZONE}}]
    path, kwargs = SnapshotStatusTrigger(items, PROJECT, "taken", endpoint="http://127.0.0.1:1").serialize()
    assert path == "vmbackup.compute.triggers.SnapshotStatusTrigger"
    assert SnapshotStatusTrigger(**kwargs).serialize() == (path, kwargs)


def test_sensors_refuse_to_run_without_a_timeout() -> None:
    from vmbackup.compute.sensors import OperationStatusSensor

    with pytest.raises(ValueError, match="explicit timeout"):
        OperationStatusSensor(task_id="wait", operation=None)


def test_sensors_reschedule_by_default() -> None:
    from vmbackup.compute.sensors import OperationStatusSensor, SnapshotStatusSensor

    assert OperationStatusSensor(task_id="wait", operation=None, timeout=60).mode == "reschedule"
    assert SnapshotStatusSensor(task_id="snap", snapshots=None, project=PROJECT, timeout=60).mode == "reschedule"
