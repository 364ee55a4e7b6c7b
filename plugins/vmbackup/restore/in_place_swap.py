"""Changing the VM of an in-place restore: hold it, stop it, swap in the restored disks, start it; or put its own back.

Shared by the in-place restore DAG's steps (restore/in_place_operators.py) and by `vmbackupctl restore
--from-snapshots --in-place` (controller/vmbackupctl/disaster_in_place.py), which runs them itself when Kubernetes
and Airflow are gone. Each step reads the VM and changes only what differs, so a retried step, or a second run of
an interrupted restore, finishes the work instead of repeating it. `say` tells each step (the task log, or the CLI's
stderr). No Airflow import.

While it swaps, the restore holds the VM with the backup lock label (vm/lock.py), which on a RUNNING VM also sets
the stopped-by mark (vm/mark.py): no backup run stops, snapshots or starts it meanwhile, and whoever finds the VM
stopped with that mark knows this restore owes it a start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.model import labels as vmlabels
from vmbackup.restore.plan import RestorePlan
from vmbackup.vm import disks as vm_disks
from vmbackup.vm.disks import Attachment
from vmbackup.vm.labels import set_disk_labels
from vmbackup.vm.lock import VmRef, acquire_lock, holds_our_lock, release_lock
from vmbackup.vm.power import start_until_running, stop_until_stopped

log = logging.getLogger(__name__)

Say = Callable[[str], None]

SWAP_FIELD = "spec.inPlace.swapSeconds"
LOCK_MARGIN_SECONDS = 600  # the lock outlives the swap's own deadline: putting the disks back may still need the VM


def replace_disks(hook: ComputeEngineHook, plan: RestorePlan, seconds: int, say: Say = log.info) -> dict[str, Any]:
    """Hold the VM (InstanceHeldError while a backup run holds it), stop it, swap in the restored disks and start it
    again if it was running; what an earlier try did already is not done again. Returns what was detached and
    attached. Any error leaves the VM to `put_back` (or `settle`)."""
    deadline = time.monotonic() + seconds
    take(hook, plan, seconds + LOCK_MARGIN_SECONDS)
    say(f"instance {plan['target']}: held by this restore (label {vmlabels.LOCK})")
    swapped: dict[str, Any] = {"detached": [], "attached": []}
    if not is_restored(hook, plan):
        stop(hook, plan, deadline, say)
        swapped = swap_to(hook, plan, plan["in_place"]["replacements"], deadline, say)
    start(hook, plan, deadline, say)
    return swapped


def settle(
    hook: ComputeEngineHook, plan: RestorePlan, *, swapped: bool, seconds: int, say: Say = log.info
) -> dict[str, Any]:
    """After the swap (`swapped`): label (or delete, when asked) the replaced disks and let go of the VM. After any
    failure: `put_back`."""
    deadline = time.monotonic() + seconds
    if swapped and is_restored(hook, plan):
        replaced = label_replaced(hook, plan, deadline)
        if replaced:
            say(f"replaced disk(s) {', '.join(replaced)}: labelled {vmlabels.REPLACED_BY}={plan['marker']}")
        deleted = delete_replaced(hook, plan, deadline, say) if plan["in_place"]["delete_replaced"] else []
        give_back(hook, plan)
        say(f"instance {plan['target']}: let go (lock label removed)")
        return {"restored": True, "rolled_back": False, "replaced": replaced, "deleted_replaced": deleted}
    return put_back(hook, plan, deadline, say)


def put_back(hook: ComputeEngineHook, plan: RestorePlan, deadline: float, say: Say = log.info) -> dict[str, Any]:
    """Put the original disks back under their device names, start the VM if it was running, let go of it. A VM
    this restore never changed is left alone; one that does not start keeps the stopped-by mark (the keeper's)."""
    if not touched(hook, plan):
        say(f"instance {plan['target']} was not changed: nothing to put back")
        return {"restored": False, "rolled_back": False}
    say(f"putting the original disks of {plan['target']} back")
    if differs(hook, plan):
        stop(hook, plan, deadline, say)
        detach_added(hook, plan, deadline, say)
        swap_to(hook, plan, plan["in_place"]["originals"], deadline, say)
    try:
        start(hook, plan, deadline, say)
    finally:
        give_back(hook, plan)
    return {"restored": False, "rolled_back": True}


def touched(hook: ComputeEngineHook, plan: RestorePlan) -> bool:
    """Did this restore change the VM: its lock (it may have stopped it), or a disk swapped?"""
    return holds(hook, plan) or differs(hook, plan)


def differs(hook: ComputeEngineHook, plan: RestorePlan) -> bool:
    """Is a device of the VM not as it was: an original gone, or a restored disk at a device it did not have?"""
    now = attached(hook, plan)
    had = {o["device_name"] for o in plan["in_place"]["originals"]}
    return any(now.get(o["device_name"]) != o["disk"] for o in plan["in_place"]["originals"]) or any(
        now.get(r["device_name"]) == r["disk"] for r in plan["in_place"]["replacements"] if r["device_name"] not in had
    )


def detach_added(hook: ComputeEngineHook, plan: RestorePlan, deadline: float, say: Say = log.info) -> None:
    """Restored disks at device names the VM did not have before go again."""
    had = {o["device_name"] for o in plan["in_place"]["originals"]}
    now = attached(hook, plan)
    for new in plan["in_place"]["replacements"]:
        if new["device_name"] not in had and now.get(new["device_name"]) == new["disk"]:
            say(f"detaching disk {new['disk']} (device {new['device_name']}) from {plan['target']}")
            vm_disks.detach(
                hook, plan["project"], plan["zone"], plan["target"], new["device_name"], lambda: left(deadline)
            )


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


def stop(hook: ComputeEngineHook, plan: RestorePlan, deadline: float, say: Say = log.info) -> None:
    """Until stopped (a stop of a stopped VM is not asked for)."""
    say(f"instance {plan['target']}: stopping (if running) and waiting until it is stopped")
    stop_until_stopped(
        hook,
        plan["project"],
        plan["zone"],
        plan["target"],
        timeout_seconds=left(deadline),
        poll_seconds=1.0,
        timeout_field=SWAP_FIELD,
    )


def start(hook: ComputeEngineHook, plan: RestorePlan, deadline: float, say: Say = log.info) -> None:
    """Until RUNNING (a SUSPENDED one resumed, a stockout tried again), when it was RUNNING before the restore."""
    if plan["in_place"]["prior_status"] != "RUNNING":
        say(f"instance {plan['target']}: left stopped, as it was before the restore")
        return
    say(f"instance {plan['target']}: starting (if not running) and waiting until it is RUNNING")
    start_until_running(
        hook,
        plan["project"],
        plan["zone"],
        plan["target"],
        timeout_seconds=left(deadline),
        poll_seconds=1.0,
        timeout_field=SWAP_FIELD,
    )
    say(f"instance {plan['target']}: RUNNING")


def swap_to(
    hook: ComputeEngineHook, plan: RestorePlan, wanted: list[Attachment], deadline: float, say: Say = log.info
) -> dict[str, Any]:
    """Give each device name of `wanted` its disk (vm/disks.swap_devices); the VM must be TERMINATED."""
    return vm_disks.swap_devices(
        hook, plan["project"], plan["zone"], plan["target"], wanted, lambda: left(deadline), say
    )


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


def delete_replaced(hook: ComputeEngineHook, plan: RestorePlan, deadline: float, say: Say = log.info) -> list[str]:
    """spec.inPlace.deleteReplacedDisks, after success only: the originals, unless something uses them again."""
    deleted = []
    for original in plan["in_place"]["originals"]:
        disk = hook.find_disk(plan["project"], plan["zone"], original["disk"])
        if disk is None:
            continue
        if disk.users:
            say(f"replaced disk {original['disk']} is in use by {', '.join(disk.users)}: kept")
            continue
        say(f"deleting replaced disk {original['disk']} (asked for)")
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
