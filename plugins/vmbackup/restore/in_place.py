"""In-place restores: the source VM keeps its identity and gets disks made from the snapshots, or its own back.

The plan (read only) pairs each snapshot with the device name its disk had, and records which disk the VM has at
that device name now (the original). Swapping stops the VM, detaches the originals and attaches the new disks
under the same device names and boot flag, and starts it again; a failure anywhere swaps the originals back and
starts the VM. Both directions are one convergence (`swap_to`): it reads the VM and changes only what differs, so
a retried step finishes the work instead of repeating it.

Compute Engine's rules this follows (the simulator enforces them, devstack/gce_simulator/devices.py): a boot disk
is detached or attached only while the VM is TERMINATED; a disk attached READ_WRITE elsewhere cannot be attached
("Only one virtual machine at a time can be attached to a disk in read-write mode", AttachedDisk.mode reference).
While it swaps, the restore holds the VM with the backup lock label (vm/lock.py), so no backup run stops,
snapshots or starts it meanwhile; a VM a backup run holds is refused.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from vmbackup.compute.hook import STOPPED_STATUSES, ComputeEngineHook, resource_name
from vmbackup.compute.instance_conversion import config_of_instance
from vmbackup.model import labels as vmlabels
from vmbackup.model.identifiers import lock_holder, run_hash
from vmbackup.model.restore import RESTORE_LABEL, Restore, restored_disk_name
from vmbackup.restore.plan import (
    InPlacePlan,
    PlannedDisk,
    RestorePlan,
    RestoreProblemError,
    _instance_config,
    choose_snapshots,
    is_ours,
    source_zone,
)
from vmbackup.vm import disks as vm_disks
from vmbackup.vm.disks import Attachment
from vmbackup.vm.labels import set_disk_labels
from vmbackup.vm.lock import VmRef, acquire_lock, foreign_lock, held_message, holds_our_lock, release_lock
from vmbackup.vm.marked import restart_if_marked
from vmbackup.vm.power import start_until_running, stop_until_stopped

log = logging.getLogger(__name__)

SWAP_FIELD = "spec.inPlace.swapSeconds"


def plan_in_place(restore: Restore, hook: ComputeEngineHook, run_id: str) -> RestorePlan:
    """Which disk replaces which, read from the snapshots and the VM; RestoreProblemError names the fix."""
    assert restore.spec.in_place is not None  # parse_restore requires it for mode InPlace
    run, snapshots = choose_snapshots(restore, hook)
    zone = source_zone(restore, snapshots)
    lock_run = run_hash(restore.dag_id, run_id)
    instance = _instance_to_swap(restore, hook, zone, lock_run)
    by_disk = {resource_name(d.source): d for d in instance.disks if d.source}
    disks, originals = _planned_disks(restore, run, snapshots, instance, zone)
    done = all(d["name"] in by_disk for d in disks)
    _check_names_and_types(restore, hook, zone, disks, originals)
    log.info(
        "Restoring %s (%s) in place from run %s: %s",
        restore.instance,
        zone,
        run,
        ", ".join(f"{d['device_name']}: {d['snapshot']} -> {d['name']}" for d in disks),
    )
    spec = restore.spec.in_place
    return RestorePlan(
        project=restore.project,
        marker=restore.marker,
        run=run,
        snapshots=[d["snapshot"] for d in disks],
        source_instance=restore.instance,
        source_zone=zone,
        source_exists=True,
        target=restore.instance,
        zone=zone,
        done=done,
        disks=disks,
        instance=_instance_config(restore, config_of_instance(instance), zone, disks),
        in_place=InPlacePlan(
            lock_run=lock_run,
            lock_holder=lock_holder("restore", restore.namespace, restore.name, run_id),
            prior_status="RUNNING" if instance.status == "RUNNING" else "TERMINATED",
            originals=[] if done else originals,
            replacements=[
                Attachment(disk=d["name"], device_name=d["device_name"], boot=d["boot"], auto_delete=d["auto_delete"])
                for d in disks
            ],
            delete_replaced=spec.delete_replaced_disks,
        ),
    )


def _instance_to_swap(restore: Restore, hook: ComputeEngineHook, zone: str, lock_run: str) -> Any:
    """The source VM as it is now, once it is known to exist, be held by no backup run and be RUNNING or stopped."""
    instance, _ = restart_if_marked(  # a VM a run of ours left stopped is started first, never restored stopped
        hook, restore.project, zone, restore.instance, timeout_seconds=600, poll_seconds=1.0, timeout_field="a start"
    )
    if instance is None:
        raise RestoreProblemError(
            f"spec.mode: an InPlace restore replaces the disks of instance {restore.instance}, which no longer exists "
            f"in zone {zone}; remove spec.mode and spec.inPlace to restore it as a new VM"
        )
    held = foreign_lock(instance, lock_run, time.time())
    if held:
        raise RestoreProblemError(
            f"instance {restore.instance} is held by a backup run, so it is not restored in place now "
            f"({held_message(held)}); "
            "nothing was changed: create the VMRestore again once that backup has finished"
        )
    if instance.status not in ("RUNNING", *STOPPED_STATUSES):
        raise RestoreProblemError(
            f"instance {restore.instance} is {instance.status}; an InPlace restore needs it RUNNING or TERMINATED "
            "(nothing was changed)"
        )
    return instance


def _planned_disks(
    restore: Restore, run: str | None, snapshots: list[Any], instance: Any, zone: str
) -> tuple[list[PlannedDisk], list[Attachment]]:
    """The disk each snapshot makes, at the device name its disk had (boot first), and what the VM has at those
    device names now (the originals)."""
    by_device = {d.device_name: d for d in instance.disks if d.source}
    by_disk = {resource_name(d.source): d for d in instance.disks if d.source}
    disks: list[PlannedDisk] = []
    originals: list[Attachment] = []
    for snap in snapshots:
        source_disk = resource_name(snap.source_disk)
        new_name = restored_disk_name(restore.name, source_disk, False)
        # The disk as attached now: the backed-up one, or this restore's own (an earlier run already swapped it).
        link = by_disk.get(source_disk) or by_disk.get(new_name)
        device = snap.labels.get(vmlabels.DEVICE) or (link.device_name if link is not None else source_disk)
        current = by_device.get(device)
        if vmlabels.BOOT in snap.labels:
            boot = snap.labels[vmlabels.BOOT] == "true"
        else:
            known = link if link is not None else current
            boot = bool(known.boot) if known is not None else len(snapshots) == 1
        if current is not None and bool(current.boot) != boot:
            raise RestoreProblemError(
                f"device {device} of {restore.instance} is {'' if current.boot else 'not '}its boot disk now, but "
                f"was{'' if boot else ' not'} when run {run} backed it up; restore as a new VM instead (remove "
                "spec.mode)"
            )
        if current is not None:
            originals.append(
                Attachment(
                    disk=resource_name(current.source),
                    device_name=device,
                    boot=boot,
                    auto_delete=bool(current.auto_delete),
                )
            )
        disks.append(
            PlannedDisk(
                project=restore.project,
                zone=zone,
                name=new_name,
                snapshot=snap.name,
                source_disk=source_disk,
                boot=boot,
                device_name=device,
                auto_delete=bool(current.auto_delete) if current is not None else boot,
                disk_type=None,
                labels={RESTORE_LABEL: restore.marker, vmlabels.MANAGED_BY: vmlabels.MANAGED_BY_VALUE},
                instance=restore.instance,
                snapshot_project=restore.snapshots_in,
            )
        )
    if sum(d["boot"] for d in disks) > 1:
        raise RestoreProblemError(f"run {run} records several boot disks of {restore.instance}; restore as a new VM")
    disks.sort(key=lambda d: (not d["boot"], d["name"]))
    return disks, originals


def _check_names_and_types(
    restore: Restore, hook: ComputeEngineHook, zone: str, disks: list[PlannedDisk], originals: list[Attachment]
) -> None:
    """Refuse a disk name another owner took; give each new disk the type of the disk it was (or replaces)."""
    for disk in disks:
        found = hook.find_disk(restore.project, zone, disk["name"])
        if found is not None and not is_ours(found.labels, restore.marker):
            raise RestoreProblemError(
                f"disk {disk['name']} already exists in zone {zone} and was not created by this restore; name the "
                "VMRestore differently (the existing disk was not touched)"
            )
        if found is not None and found.type_:
            disk["disk_type"] = resource_name(found.type_)
    for disk in disks:
        original = next((o for o in originals if o["device_name"] == disk["device_name"]), None)
        source = hook.find_disk(restore.project, zone, original["disk"]) if original else None
        if source is not None and source.type_ and disk["disk_type"] is None:
            disk["disk_type"] = resource_name(source.type_)


def locked_vm(plan: RestorePlan) -> VmRef:
    """The VM as vm/lock.py names what it locks (this restore's own run value)."""
    found = VmRef(project=plan["project"], zone=plan["zone"], instance=plan["target"], run=plan["in_place"]["lock_run"])
    if "lock_holder" in plan["in_place"]:
        found["holder"] = plan["in_place"]["lock_holder"]
    return found


def attached(hook: ComputeEngineHook, plan: RestorePlan) -> dict[str, str]:
    """Device name -> disk name of the VM now."""
    return vm_disks.attached(hook, plan["project"], plan["zone"], plan["target"])


def holds(hook: ComputeEngineHook, plan: RestorePlan) -> bool:
    instance = hook.get_instance(plan["project"], plan["zone"], plan["target"])
    return holds_our_lock(instance, locked_vm(plan))


def take(hook: ComputeEngineHook, plan: RestorePlan, ttl_seconds: int) -> None:
    """Hold the VM with the lock label (InstanceHeldError when a backup run holds it)."""
    acquire_lock(hook, locked_vm(plan), ttl_seconds)


def give_back(hook: ComputeEngineHook, plan: RestorePlan) -> None:
    release_lock(hook, locked_vm(plan))


def stop(hook: ComputeEngineHook, plan: RestorePlan, deadline: float) -> None:
    """Until stopped (a stop of a stopped VM is not asked for)."""
    stop_until_stopped(
        hook,
        plan["project"],
        plan["zone"],
        plan["target"],
        timeout_seconds=left(deadline),
        poll_seconds=1.0,
        timeout_field=SWAP_FIELD,
    )


def start(hook: ComputeEngineHook, plan: RestorePlan, deadline: float) -> None:
    """Until RUNNING (a SUSPENDED one resumed, a stockout tried again), when it was RUNNING before the restore."""
    if plan["in_place"]["prior_status"] != "RUNNING":
        return
    start_until_running(
        hook,
        plan["project"],
        plan["zone"],
        plan["target"],
        timeout_seconds=left(deadline),
        poll_seconds=1.0,
        timeout_field=SWAP_FIELD,
    )


def swap_to(hook: ComputeEngineHook, plan: RestorePlan, wanted: list[Attachment], deadline: float) -> dict[str, Any]:
    """Give each device name of `wanted` its disk (vm/disks.swap_devices); the VM must be TERMINATED."""
    return vm_disks.swap_devices(hook, plan["project"], plan["zone"], plan["target"], wanted, lambda: left(deadline))


def is_restored(hook: ComputeEngineHook, plan: RestorePlan) -> bool:
    now = attached(hook, plan)
    return all(now.get(r["device_name"]) == r["disk"] for r in plan["in_place"]["replacements"])


def label_replaced(hook: ComputeEngineHook, plan: RestorePlan, deadline: float) -> list[str]:
    """Mark each replaced disk with the restore that replaced it (never deleted unless asked)."""
    labelled = []
    for original in plan["in_place"]["originals"]:
        for _ in range(8):
            disk = hook.find_disk(plan["project"], plan["zone"], original["disk"])
            if disk is None or disk.labels.get(vmlabels.REPLACED_BY) == plan["marker"]:
                break
            labels = {**disk.labels, vmlabels.REPLACED_BY: plan["marker"]}
            left(deadline)
            if set_disk_labels(hook, plan["project"], plan["zone"], original["disk"], labels, disk.label_fingerprint):
                break  # else a stale fingerprint: read again
        labelled.append(original["disk"])
    return labelled


def delete_replaced(hook: ComputeEngineHook, plan: RestorePlan, deadline: float) -> list[str]:
    """spec.inPlace.deleteReplacedDisks, after success only: the originals, unless something uses them again."""
    deleted = []
    for original in plan["in_place"]["originals"]:
        disk = hook.find_disk(plan["project"], plan["zone"], original["disk"])
        if disk is None:
            continue
        if disk.users:
            log.warning("replaced disk %s is in use by %s: kept", original["disk"], ", ".join(disk.users))
            continue
        ref = hook.delete_disk(plan["project"], plan["zone"], original["disk"])
        if ref is not None:
            hook.wait_done(ref, left(deadline))
        deleted.append(original["disk"])
    return deleted


def left(deadline: float) -> float:
    """Seconds left before spec.inPlace.swapSeconds runs out; TimeoutError when none are."""
    seconds = deadline - time.monotonic()
    if seconds <= 0:
        raise TimeoutError("spec.inPlace.swapSeconds passed before the disks were swapped")
    return seconds
