"""Carrying out a restore plan: the Compute Engine writes of a restore's disks and new VM, shared by the restore DAG's
steps and by `vmbackupctl restore --from-snapshots` (which runs them itself when Kubernetes and Airflow are gone;
an in-place restore's VM changes are restore/in_place_swap.py's).

Each write is idempotent by name and label: a disk or VM of the planned name that carries this restore's label was
made by an earlier try and is adopted; one of the same name without it is refused (RestoreProblemError, never
touched). So a restore interrupted anywhere is finished by running it again. No Airflow import.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from vmbackup.compute.hook import ComputeEngineHook, OperationRef
from vmbackup.model.restore import RESTORE_LABEL, Restore
from vmbackup.restore.plan import (
    PlannedDisk,
    RestorePlan,
    RestoreProblemError,
    instance_resource,
    is_ours,
    plan_restore,
    planned_disk_resource,
)
from vmbackup.vm.disks import replaces_note

log = logging.getLogger(__name__)

DISK_POLL_SECONDS = 2.0


def start_disk(hook: ComputeEngineHook, disk: PlannedDisk) -> OperationRef | None:
    """Start creating one planned disk from its snapshot; None when this restore made it already (adopted)."""
    why = f"restored by vmbackup-operator from snapshot {disk['snapshot']} of {disk['source_disk']}"
    if "replaces" in disk:  # read back by an in-place restore's plan when the VM no longer has the original
        why += f"; {replaces_note(disk['replaces'])}"
    resource = planned_disk_resource(disk, why)
    ref = hook.insert_disk(disk["project"], disk["zone"], resource)
    if ref is not None:
        log.info("Creating disk %s from snapshot %s", disk["name"], disk["snapshot"])
        return ref
    existing = hook.find_disk(disk["project"], disk["zone"], disk["name"])
    if existing is None or not is_ours(existing.labels, disk["labels"][RESTORE_LABEL]):
        raise RestoreProblemError(
            f"disk {disk['name']} already exists in zone {disk['zone']} and was not created by this restore; "
            "choose another spec.targetName (the existing disk was not touched)"
        )
    log.info("disk %s already exists (created earlier by this restore): adopted", disk["name"])
    return None


def wait_disk_ready(hook: ComputeEngineHook, disk: PlannedDisk, timeout_seconds: float) -> None:
    """Until the disk is READY (an adopted one may still be CREATING or RESTORING); RestoreProblemError if it fails."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        found = hook.find_disk(disk["project"], disk["zone"], disk["name"])
        status = found.status if found is not None else "gone"
        if status == "READY":
            return
        if status not in ("CREATING", "RESTORING") or time.monotonic() > deadline:
            raise RestoreProblemError(f"disk {disk['name']} is {status}, not READY")
        time.sleep(DISK_POLL_SECONDS)


def start_instance(hook: ComputeEngineHook, plan: RestorePlan) -> OperationRef | None:
    """Start creating the restored VM; None when this restore made it already (adopted)."""
    ref = hook.insert_instance(plan["project"], plan["zone"], instance_resource(plan))
    if ref is not None:
        log.info("Creating instance %s in %s", plan["target"], plan["zone"])
        return ref
    existing = hook.find_instance(plan["project"], plan["zone"], plan["target"])
    if existing is None or not is_ours(existing.labels, plan["marker"]):
        raise RestoreProblemError(
            f"instance {plan['target']} already exists in zone {plan['zone']}; choose another spec.targetName "
            "(the existing instance was not touched)"
        )
    log.info("instance %s already exists (created earlier by this restore): adopted", plan["target"])
    return None


def create_disks(
    hook: ComputeEngineHook, disks: list[PlannedDisk], timeout_seconds: float, progress: Callable[[str], None]
) -> None:
    """Create (or adopt) each planned disk and wait until it is READY, one after the other, saying each step."""
    for disk in disks:
        ref = start_disk(hook, disk)
        progress(f"disk {disk['name']}: {'adopted' if ref is None else 'creating'} from snapshot {disk['snapshot']}")
        if ref is not None:
            hook.wait_done(ref, timeout_seconds)
        wait_disk_ready(hook, disk, timeout_seconds)
        progress(f"disk {disk['name']}: READY")


def restore_now(restore: Restore, hook: ComputeEngineHook, progress: Callable[[str], None]) -> RestorePlan:
    """Plan and carry out a new-VM restore here and now (no Airflow), saying each step through `progress`."""
    plan = plan_restore(restore, hook)
    where = f"project {plan['project']}, zone {plan['zone']}"
    progress(f"run {plan['run']}: {len(plan['disks'])} disk(s) from snapshot(s) {', '.join(plan['snapshots'])}")
    if plan["done"]:
        progress(f"instance {plan['target']} ({where}) was already restored by this restore: nothing to do")
        return plan
    timeouts = restore.spec.timeouts
    create_disks(hook, plan["disks"], timeouts.disks_seconds, progress)
    ref = start_instance(hook, plan)
    progress(f"instance {plan['target']} ({where}): {'adopted' if ref is None else 'creating'}")
    if ref is not None:
        hook.wait_done(ref, timeouts.instance_seconds)
    status = hook.get_instance(plan["project"], plan["zone"], plan["target"]).status
    progress(f"instance {plan['target']}: {status}")
    return plan
