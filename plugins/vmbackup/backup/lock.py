"""The instance lock: labels naming the run that stopped a VM, so only that run starts it again.

Set and removed with labelFingerprint concurrency, so two runs (of one policy or two) never both hold a VM;
whether "this run stopped it" is read from the instance itself, so it holds after retries and partial failures.
The lock names its holder (policy or restore, namespace/name, Airflow run id: model/identifiers.lock_labels), so
a run that meets it can say who holds the VM; an older lock without those labels is honoured all the same.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from vmbackup.backup.resolution import Target
from vmbackup.compute.hook import STOPPING_STATUSES, ComputeEngineHook, OperationRef
from vmbackup.model.identifiers import Lock, lock_labels, read_lock, without_lock

log = logging.getLogger(__name__)


class InstanceHeldError(Exception):
    """Another run holds the instance (its lock label has not expired)."""

    def __init__(self, lock: Lock):
        super().__init__(held_message(lock))
        self.lock = lock


def held_message(lock: Lock) -> str:
    return f"held by {lock.holder()} until {lock.until()}"


def foreign_lock(instance: Any, run: str, now: float) -> Lock | None:
    """The unexpired lock of another run on the instance, if any."""
    lock = read_lock(instance.labels)
    return lock if lock and lock.run != run and lock.expires > now else None


def acquire_lock(hook: ComputeEngineHook, target: Target, ttl_seconds: int, attempts: int = 8) -> Any:
    """Set our lock label with labelFingerprint concurrency; returns the instance as it is after locking."""
    for _ in range(attempts):
        instance = hook.get_instance(target["project"], target["zone"], target["instance"])
        held = foreign_lock(instance, target["run"], time.time())
        if held:
            raise InstanceHeldError(held)
        lock = read_lock(instance.labels)
        if lock and lock.run == target["run"]:
            return instance
        labels = without_lock(instance.labels) | lock_labels(target["run"], ttl_seconds, target.get("holder"))
        if _set_labels(hook, target, labels, instance.label_fingerprint):
            continue  # re-read: confirms our lock (or meets the run that won the race)
    raise RuntimeError(f"could not lock instance {target['instance']}: its labels kept changing")


def release_lock(hook: ComputeEngineHook, target: Target, attempts: int = 8) -> bool:
    """Remove our lock label; False when the instance does not carry our lock."""
    for _ in range(attempts):
        instance = hook.find_instance(target["project"], target["zone"], target["instance"])
        if instance is None:
            return False
        lock = read_lock(instance.labels)
        if not lock or lock.run != target["run"]:
            return False
        labels = without_lock(instance.labels)
        if _set_labels(hook, target, labels, instance.label_fingerprint):
            return True
    raise RuntimeError(f"could not release the lock of instance {target['instance']}: its labels kept changing")


def _set_labels(hook: ComputeEngineHook, target: Target, labels: dict[str, str], fingerprint: str) -> bool:
    """True when applied; False when the fingerprint was stale (someone changed the labels meanwhile)."""
    from google.api_core import exceptions as gexc

    try:
        ref = hook.set_instance_labels(target["project"], target["zone"], target["instance"], labels, fingerprint)
        hook.wait_done(ref, 120)
        return True
    except gexc.PreconditionFailed:
        return False
    except gexc.BadRequest as exc:  # some Compute Engine versions answer a stale fingerprint with 400
        if "fingerprint" in str(exc).lower():
            return False
        raise


def holds_our_lock(instance: Any, target: Target) -> bool:
    lock = read_lock(instance.labels)
    return bool(lock and lock.run == target["run"])


def start_if_ours(hook: ComputeEngineHook, t: Target, stopping_timeout_seconds: float) -> OperationRef | None:
    """Start an instance our run stopped; release the lock when it is already running again."""
    instance = hook.find_instance(t["project"], t["zone"], t["instance"])
    if instance is None or not holds_our_lock(instance, t):
        return None
    deadline = time.monotonic() + stopping_timeout_seconds
    while instance.status in STOPPING_STATUSES and time.monotonic() < deadline:
        time.sleep(1)  # Compute Engine refuses start while the instance is still stopping
        instance = hook.get_instance(t["project"], t["zone"], t["instance"])
    if instance.status == "RUNNING":
        release_lock(hook, t)
        return None
    log.info("Starting instance %s in %s (it was RUNNING before this run)", t["instance"], t["zone"])
    return hook.start_instance(t["project"], t["zone"], t["instance"])
