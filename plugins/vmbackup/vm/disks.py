"""A VM's disks: a disk made from a snapshot, and which disk sits at which device name (detach, attach, wait).

Compute Engine's rules (the simulator enforces them, devstack/gce_simulator/devices.py): a boot disk is detached or
attached only while the VM is TERMINATED; a disk attached READ_WRITE elsewhere cannot be attached ("Only one
virtual machine at a time can be attached to a disk in read-write mode", AttachedDisk.mode in the compute v1
reference, https://cloud.google.com/compute/docs/reference/rest/v1/instances/attachDisk).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypedDict

from vmbackup.compute.compute_library import compute_v1
from vmbackup.compute.hook import ComputeEngineHook, resource_name

log = logging.getLogger(__name__)


class Attachment(TypedDict):
    """A disk at a device name of a VM, with its boot flag and autoDelete."""

    disk: str
    device_name: str
    boot: bool
    auto_delete: bool


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
    hook: ComputeEngineHook, project: str, zone: str, name: str, wanted: list[Attachment], left: Callable[[], float]
) -> dict[str, list[str]]:
    """Give each device name of `wanted` its disk: detach whatever else is there, then attach (boot first).

    Reads the VM and changes only what differs, so a retried step finishes the work instead of repeating it. The VM
    must be TERMINATED when a boot disk changes. Returns what it detached and attached."""
    now = attached(hook, project, zone, name)
    detached, added = [], []
    for want in wanted:
        there = now.get(want["device_name"])
        if there is not None and there != want["disk"]:
            log.info("Detaching %s (device %s) from %s", there, want["device_name"], name)
            detach(hook, project, zone, name, want["device_name"], left)
            detached.append(there)
    now = attached(hook, project, zone, name)
    for want in sorted(wanted, key=lambda a: not a["boot"]):
        if now.get(want["device_name"]) == want["disk"]:
            continue
        log.info("Attaching %s to %s as device %s", want["disk"], name, want["device_name"])
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
