"""A VM's disks: a disk made from a snapshot, and which disk sits at which device name (detach, attach, wait).

Compute Engine's rules (the simulator enforces them, devstack/gce_simulator/devices.py): a boot disk is detached or
attached only while the VM is TERMINATED; a disk attached READ_WRITE elsewhere cannot be attached ("Only one
virtual machine at a time can be attached to a disk in read-write mode", AttachedDisk.mode in the compute v1
reference, https://cloud.google.com/compute/docs/reference/rest/v1/instances/attachDisk).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TypedDict

from vmbackup.compute.compute_library import compute_v1
from vmbackup.compute.hook import ComputeEngineHook, resource_name

log = logging.getLogger(__name__)

REPLACES_MARKER = "vmbackup-replaces:"  # in a restored disk's description: the disk it replaces (replaces_note)


class Attachment(TypedDict):
    """A disk at a device name of a VM, with its boot flag and autoDelete."""

    disk: str
    device_name: str
    boot: bool
    auto_delete: bool


def replaces_note(original: Attachment) -> str:
    """What a disk made for an in-place restore records, in its description, of the disk it replaces: a second run
    of an interrupted restore reads it back when the VM no longer has that disk attached (a stored format)."""
    fields = {
        "disk": original["disk"],
        "deviceName": original["device_name"],
        "boot": original["boot"],
        "autoDelete": original["auto_delete"],
    }
    return REPLACES_MARKER + json.dumps(fields, sort_keys=True, separators=(",", ":"))


def replaced_in(description: str | None) -> Attachment | None:
    """The attachment replaces_note recorded in a disk's description; None when there is none (or it is unreadable)."""
    _, found, text = (description or "").partition(REPLACES_MARKER)
    if not found:
        return None
    try:
        data = json.loads(text)
        return Attachment(
            disk=str(data["disk"]),
            device_name=str(data["deviceName"]),
            boot=bool(data["boot"]),
            auto_delete=bool(data["autoDelete"]),
        )
    except (ValueError, KeyError, TypeError):
        log.warning("unreadable %s record in a disk's description: %r", REPLACES_MARKER, text[:200])
        return None


def disk_from_snapshot(
    project: str,
    zone: str,
    name: str,
    snapshot: str,
    *,
    labels: dict[str, str],
    disk_type: str | None,
    why: str,
    snapshot_project: str | None = None,
) -> compute_v1.Disk:
    """The disk resource that disks.insert makes in `project` from a snapshot of `snapshot_project` (a backup
    project), else of `project` (`why` is its description). Reading a snapshot of another project takes
    compute.snapshots.useReadOnly there (docs/backup-project.md)."""
    source = f"projects/{snapshot_project or project}/global/snapshots/{snapshot}"
    resource = compute_v1.Disk(name=name, source_snapshot=source, labels=labels, description=why)
    if disk_type:
        resource.type_ = f"zones/{zone}/diskTypes/{disk_type}"
    return resource


def attached(hook: ComputeEngineHook, project: str, zone: str, name: str) -> dict[str, str]:
    """Device name -> disk name of the VM now."""
    instance = hook.get_instance(project, zone, name)
    return {d.device_name: resource_name(d.source) for d in instance.disks if d.source}


def detach(hook: ComputeEngineHook, project: str, zone: str, name: str, device: str, left: Callable[[], float]) -> None:
    """Detach the disk at `device` and wait (`left`: seconds left, raising when none are)."""
    hook.wait_done(hook.detach_disk(project, zone, name, device), left())


def swap_devices(
    hook: ComputeEngineHook,
    project: str,
    zone: str,
    name: str,
    wanted: list[Attachment],
    left: Callable[[], float],
    say: Callable[[str], None] = log.info,
) -> dict[str, list[str]]:
    """Give each device name of `wanted` its disk: detach whatever else is there, then attach (boot first).

    Reads the VM and changes only what differs, so a retried step finishes the work instead of repeating it. The VM
    must be TERMINATED when a boot disk changes. Returns what it detached and attached; `say` tells each call."""
    now = attached(hook, project, zone, name)
    detached, added = [], []
    for want in wanted:
        there = now.get(want["device_name"])
        if there is not None and there != want["disk"]:
            say(f"detaching disk {there} (device {want['device_name']}) from {name}")
            detach(hook, project, zone, name, want["device_name"], left)
            detached.append(there)
    now = attached(hook, project, zone, name)
    for want in sorted(wanted, key=lambda a: not a["boot"]):
        if now.get(want["device_name"]) == want["disk"]:
            continue
        say(f"attaching disk {want['disk']} to {name} as device {want['device_name']}")
        ref = hook.attach_disk(
            project,
            zone,
            name,
            want["disk"],
            device_name=want["device_name"],
            boot=want["boot"],
            auto_delete=want["auto_delete"],
        )
        hook.wait_done(ref, left())
        added.append(want["disk"])
    return {"detached": detached, "attached": added}
