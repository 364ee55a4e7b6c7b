"""In-place restores: the source VM keeps its identity and gets disks made from the snapshots, or its own back.

The plan (read only, this module) pairs each snapshot with the device name its disk had, and records which disk the
VM has at that device name now (the original). Swapping (restore/in_place_swap.py) stops the VM, detaches the
originals and attaches the new disks under the same device names and boot flag, and starts it again; a failure
anywhere swaps the originals back and starts the VM. Both directions are one convergence: it reads the VM and
changes only what differs, so a retried step finishes the work instead of repeating it.

Planned again after an interruption (`vmbackupctl restore --from-snapshots --in-place` run a second time, with the
same lock run), the plan still knows the original of a device the VM no longer has it at: each restored disk
records the disk it replaces in its description (vm/disks.replaces_note), written when it is created, before the VM
is touched; and the VM's stopped-by mark says whether this restore stopped it (then it owes it a start).

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
from vmbackup.model.identifiers import lock_holder, read_lock, run_hash
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
from vmbackup.vm.disks import Attachment, replaced_in
from vmbackup.vm.lock import foreign_lock, held_message
from vmbackup.vm.mark import read_mark
from vmbackup.vm.marked import restart_if_marked

log = logging.getLogger(__name__)


def plan_in_place(restore: Restore, hook: ComputeEngineHook, run_id: str) -> RestorePlan:
    """Which disk replaces which, read from the snapshots and the VM; RestoreProblemError names the fix."""
    assert restore.spec.in_place is not None  # parse_restore requires it for mode InPlace
    run, snapshots = choose_snapshots(restore, hook)
    zone = source_zone(restore, snapshots)
    lock_run = run_hash(restore.dag_id, run_id)
    instance = _instance_to_swap(restore, hook, zone, lock_run)
    by_disk = {resource_name(d.source): d for d in instance.disks if d.source}
    made = _made_disks(restore, hook, zone, snapshots)
    disks, originals = _planned_disks(restore, run, snapshots, instance, zone, made)
    _set_types(restore, hook, zone, disks, originals, made)
    log.info(
        "Restoring %s (%s) in place from run %s: %s",
        restore.instance,
        zone,
        run,
        ", ".join(f"{d['device_name']}: {d['snapshot']} -> {d['name']}" for d in disks),
    )
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
        done=all(d["name"] in by_disk for d in disks),
        disks=disks,
        instance=_instance_config(restore, config_of_instance(instance), zone, disks),
        in_place=InPlacePlan(
            lock_run=lock_run,
            lock_holder=lock_holder("restore", restore.namespace, restore.name, run_id),
            prior_status=_prior_status(instance, lock_run),
            originals=originals,
            replacements=[
                Attachment(disk=d["name"], device_name=d["device_name"], boot=d["boot"], auto_delete=d["auto_delete"])
                for d in disks
            ],
            delete_replaced=restore.spec.in_place.delete_replaced_disks,
        ),
    )


def _instance_to_swap(restore: Restore, hook: ComputeEngineHook, zone: str, lock_run: str) -> Any:
    """The source VM as it is now, once it is known to exist, be held by no backup run and be RUNNING or stopped
    (any state while this restore holds it: an earlier try of it was interrupted, and its steps wait that out)."""
    instance = hook.find_instance(restore.project, zone, restore.instance)
    if instance is None:
        raise RestoreProblemError(
            f"spec.mode: an InPlace restore replaces the disks of instance {restore.instance}, which no longer exists "
            f"in zone {zone}; remove spec.mode and spec.inPlace to restore it as a new VM"
        )
    lock = read_lock(instance.labels)
    ours = lock is not None and lock.run == lock_run
    if not ours:  # a VM a run of ours left stopped is started first, never restored stopped
        instance, _ = restart_if_marked(
            hook,
            restore.project,
            zone,
            restore.instance,
            timeout_seconds=600,
            poll_seconds=1.0,
            timeout_field="a start",
            instance=instance,
        )
    held = foreign_lock(instance, lock_run, time.time())
    if held:
        raise RestoreProblemError(
            f"instance {restore.instance} is held by a backup run, so it is not restored in place now "
            f"({held_message(held)}); "
            "nothing was changed: create the VMRestore again once that backup has finished"
        )
    if not ours and instance.status not in ("RUNNING", *STOPPED_STATUSES):
        raise RestoreProblemError(
            f"instance {restore.instance} is {instance.status}; an InPlace restore needs it RUNNING or TERMINATED "
            "(nothing was changed)"
        )
    return instance


def _prior_status(instance: Any, lock_run: str) -> str:
    """RUNNING when the VM runs, or when this restore stopped it (its stopped-by mark is this restore's lock run: an
    earlier try was interrupted) and so owes it a start; else TERMINATED (left stopped at the end)."""
    mark = read_mark(instance.labels)
    return "RUNNING" if instance.status == "RUNNING" or (mark is not None and mark.run == lock_run) else "TERMINATED"


def _made_disks(restore: Restore, hook: ComputeEngineHook, zone: str, snapshots: list[Any]) -> dict[str, Any]:
    """The restored disks an earlier try of this restore made, by name; a name another owner took is refused."""
    made = {}
    for snap in snapshots:
        name = restored_disk_name(restore.name, resource_name(snap.source_disk), False)
        found = hook.find_disk(restore.project, zone, name)
        if found is not None and not is_ours(found.labels, restore.marker):
            raise RestoreProblemError(
                f"disk {name} already exists in zone {zone} and was not created by this restore; name the "
                "VMRestore differently (the existing disk was not touched)"
            )
        if found is not None:
            made[name] = found
    return made


def _planned_disks(
    restore: Restore, run: str | None, snapshots: list[Any], instance: Any, zone: str, made: dict[str, Any]
) -> tuple[list[PlannedDisk], list[Attachment]]:
    """The disk each snapshot makes, at the device name its disk had (boot first), and the originals: what the VM
    has at those device names now, or (where it has the restored disk, or nothing) what the restored disk records."""
    by_device = {d.device_name: d for d in instance.disks if d.source}
    by_disk = {resource_name(d.source): d for d in instance.disks if d.source}
    disks: list[PlannedDisk] = []
    originals: list[Attachment] = []
    for snap in snapshots:
        source_disk = resource_name(snap.source_disk)
        new_name = restored_disk_name(restore.name, source_disk, False)
        record = replaced_in(made[new_name].description) if new_name in made else None
        # The disk as attached now: the backed-up one, or this restore's own (an earlier run already swapped it).
        link = by_disk.get(source_disk) or by_disk.get(new_name)
        device = snap.labels.get(vmlabels.DEVICE) or (
            link.device_name if link is not None else record["device_name"] if record else source_disk
        )
        current = by_device.get(device)
        boot = _was_boot(snap, link if link is not None else current, record, len(snapshots))
        if current is not None and bool(current.boot) != boot:
            raise RestoreProblemError(
                f"device {device} of {restore.instance} is {'' if current.boot else 'not '}its boot disk now, but "
                f"was{'' if boot else ' not'} when run {run} backed it up; restore as a new VM instead (remove "
                "spec.mode)"
            )
        original = record
        if current is not None and resource_name(current.source) != new_name:
            original = Attachment(
                disk=resource_name(current.source), device_name=device, boot=boot, auto_delete=bool(current.auto_delete)
            )
        disk = PlannedDisk(
            project=restore.project,
            zone=zone,
            name=new_name,
            snapshot=snap.name,
            source_disk=source_disk,
            boot=boot,
            device_name=device,
            auto_delete=original["auto_delete"] if original is not None else boot,
            disk_type=None,
            labels={RESTORE_LABEL: restore.marker, vmlabels.MANAGED_BY: vmlabels.MANAGED_BY_VALUE},
            instance=restore.instance,
            snapshot_project=restore.snapshots_in,
        )
        if original is not None:
            originals.append(original)
            disk["replaces"] = original
        disks.append(disk)
    if sum(d["boot"] for d in disks) > 1:
        raise RestoreProblemError(f"run {run} records several boot disks of {restore.instance}; restore as a new VM")
    disks.sort(key=lambda d: (not d["boot"], d["name"]))
    return disks, originals


def _was_boot(snap: Any, known: Any, record: Attachment | None, count: int) -> bool:
    """Whether the snapshot's disk was the boot disk: as the backup labelled it, else as the VM (or the record of
    an earlier try) has it, else when it is the only one."""
    if vmlabels.BOOT in snap.labels:
        return bool(snap.labels[vmlabels.BOOT] == "true")
    if known is not None:
        return bool(known.boot)
    return record["boot"] if record is not None else count == 1


def _set_types(
    restore: Restore,
    hook: ComputeEngineHook,
    zone: str,
    disks: list[PlannedDisk],
    originals: list[Attachment],
    made: dict[str, Any],
) -> None:
    """Give each new disk the type it was made with (an earlier try), or the type of the disk it replaces."""
    for disk in disks:
        found = made.get(disk["name"])
        if found is not None and found.type_:
            disk["disk_type"] = resource_name(found.type_)
            continue
        original = next((o for o in originals if o["device_name"] == disk["device_name"]), None)
        source = hook.find_disk(restore.project, zone, original["disk"]) if original else None
        if source is not None and source.type_:
            disk["disk_type"] = resource_name(source.type_)
