"""Starts owed: a VM we stopped is started again, by the run that holds it or by whoever finds its mark.

The mark says this product stopped the VM and owes it a start (vm/mark.py); a run, restore or drill that meets
such a VM with no live lock (no run is in charge of it) starts it until RUNNING and removes the mark first, so no
run ever snapshots it "as it is" or leaves it stopped as if its owner had stopped it.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from vmbackup.compute.hook import STOPPING_STATUSES, ComputeEngineHook, OperationRef
from vmbackup.vm.lock import VmRef, clear_mark, holds_our_lock, live_lock, release_lock
from vmbackup.vm.mark import read_mark
from vmbackup.vm.power import PowerError, grace_seconds, start_until_running

log = logging.getLogger(__name__)

OWED_START_SECONDS = 600  # how long a restore or drill gives a start it owes a marked source VM


def restart_source_if_marked(hook: ComputeEngineHook, project: str, zone: str | None, name: str | None) -> str | None:
    """A restore's or drill's source VM that a run of ours left stopped is started first. They do not need it to run,
    so a failure (a stockout) is logged, not raised: the VM keeps the mark and the keeper goes on. Returns a note."""
    if not zone or not name:
        return None
    try:
        _, note = restart_if_marked(
            hook, project, zone, name, timeout_seconds=OWED_START_SECONDS, poll_seconds=1.0, timeout_field="a start"
        )
    except PowerError as exc:
        log.warning("%s was left stopped by a run of ours and could not be started: %s", name, exc)
        return str(exc)
    return note


def restart_if_marked(
    hook: ComputeEngineHook,
    project: str,
    zone: str,
    name: str,
    *,
    timeout_seconds: float,
    poll_seconds: float,
    timeout_field: str,
    instance: Any = None,
) -> tuple[Any, str | None]:
    """The instance as it is after a start owed to it (None when it does not exist), and a note when one was owed.
    `instance`: the VM as the caller just read it (saves a GET).

    Raises vm.power.PowerError (StockoutError) when it could not be started: it keeps the mark."""
    instance = instance if instance is not None else hook.find_instance(project, zone, name)
    if instance is None:
        return None, None
    mark = read_mark(instance.labels)
    if mark is None or live_lock(instance, time.time()) is not None:
        return instance, None
    when = datetime.fromtimestamp(mark.at, UTC).isoformat() if mark.at else "an unknown time"
    note = f"{name} was left {instance.status} by run {mark.run} (stopped at {when}); started again first"
    if instance.status != "RUNNING":
        log.warning("%s: %s", name, note)
        start_until_running(
            hook,
            project,
            zone,
            name,
            timeout_seconds=timeout_seconds,
            poll_seconds=poll_seconds,
            timeout_field=timeout_field,
        )
    else:
        note = f"{name} carried the stopped-by mark of run {mark.run} while RUNNING; the mark was removed"
    clear_mark(hook, project, zone, name)
    return hook.get_instance(project, zone, name), note


def start_if_ours(hook: ComputeEngineHook, t: VmRef, stopping_timeout_seconds: float) -> OperationRef | None:
    """Ask for the start of an instance our run holds (the step-per-call flow: a sensor waits for the operation);
    release the lock when it is already running again. A SUSPENDED one is resumed."""
    instance = hook.find_instance(t["project"], t["zone"], t["instance"])
    if instance is None or not holds_our_lock(instance, t):
        return None
    deadline = time.monotonic() + grace_seconds(instance) + stopping_timeout_seconds
    while instance.status in STOPPING_STATUSES and time.monotonic() < deadline:
        time.sleep(1)  # Compute Engine refuses start while the instance is still stopping
        instance = hook.get_instance(t["project"], t["zone"], t["instance"])
    if instance.status == "RUNNING":
        release_lock(hook, t)
        return None
    if instance.status == "SUSPENDED":
        return hook.resume_instance(t["project"], t["zone"], t["instance"])
    log.info("Starting instance %s in %s (it was RUNNING before this run)", t["instance"], t["zone"])
    return hook.start_instance(t["project"], t["zone"], t["instance"])


def bring_back_if_ours(
    hook: ComputeEngineHook, t: VmRef, *, timeout_seconds: float, stopping_seconds: float, poll_seconds: float
) -> bool:
    """The safety net's promise: an instance our run holds is started until RUNNING and released; True when it
    had to be started. The lock goes whatever happens (a VM that does not run keeps the mark for the keeper)."""
    instance = hook.find_instance(t["project"], t["zone"], t["instance"])
    if instance is None or not holds_our_lock(instance, t):
        return False
    try:
        if instance.status == "RUNNING":
            return False
        start_until_running(
            hook,
            t["project"],
            t["zone"],
            t["instance"],
            timeout_seconds=timeout_seconds,
            poll_seconds=poll_seconds,
            timeout_field="spec.timeouts.startSeconds",
            stopping_seconds=stopping_seconds,
        )
        return True
    finally:
        release_lock(hook, t)
