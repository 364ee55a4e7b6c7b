"""The instance lock: labels naming the run that holds a VM, so only that run stops and starts it again.

Set and removed with labelFingerprint concurrency (vm/labels.py), so two runs (of one policy or two, a backup or an
in-place restore) never both hold a VM; whether "this run holds it" is read from the instance itself, so it holds
after retries and partial failures. The lock names its holder (model/identifiers.lock_labels); an older lock
without those labels is honoured all the same. Locking a RUNNING VM (to stop it) sets the stopped-by mark in the
same call (vm/mark.py); releasing the lock of a RUNNING VM removes it in the same call.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.model import labels as vmlabels
from vmbackup.model.identifiers import Lock, LockHolder, lock_labels, read_lock, without_lock
from vmbackup.vm.labels import relabel_instance
from vmbackup.vm.mark import mark_labels, read_mark, without_mark


class VmRef(TypedDict):
    """A VM as a run names it: where it is and which run (hash) acts on it. A backup Target is one."""

    project: str
    zone: str
    instance: str
    run: str
    holder: NotRequired[LockHolder]


class InstanceHeldError(Exception):
    """Another run holds the instance (its lock label has not expired)."""

    def __init__(self, lock: Lock):
        super().__init__(held_message(lock))
        self.lock = lock


def held_message(lock: Lock) -> str:
    return f"held by {lock.holder()} until {lock.until()}"


def foreign_lock(instance: Any, run: str, now: float) -> Lock | None:
    """The unexpired lock of another run on the instance, if any."""
    return foreign_lock_in(instance.labels, run, now)


def foreign_lock_in(labels: Mapping[str, str], run: str, now: float) -> Lock | None:
    """foreign_lock, from labels read earlier."""
    lock = read_lock(labels)
    return lock if lock and lock.run != run and lock.expires > now else None


def live_lock(instance: Any, now: float) -> Lock | None:
    """Any unexpired lock on the instance: its holder is in charge of it."""
    lock = read_lock(instance.labels)
    return lock if lock and lock.expires > now else None


def holds_our_lock(instance: Any, vm: VmRef) -> bool:
    lock = read_lock(instance.labels)
    return bool(lock and lock.run == vm["run"])


def acquire_lock(
    hook: ComputeEngineHook, vm: VmRef, ttl_seconds: int, attempts: int = 8, *, instance: Any = None
) -> Any:
    """Set our lock (and, on a RUNNING VM, the stopped-by mark) in one setLabels call; returns the instance after
    (vm/labels.relabeled: not read again). `instance`: the VM as the caller just read it (saves a GET).

    InstanceHeldError when another run holds it."""
    now = time.time()

    def change(instance: Any) -> dict[str, str] | None:
        held = foreign_lock(instance, vm["run"], time.time())
        if held:
            raise InstanceHeldError(held)
        marking = instance.status == "RUNNING"  # we lock a RUNNING VM to stop it
        if holds_our_lock(instance, vm) and not (marking and read_mark(instance.labels) is None):
            return None
        labels = without_lock(instance.labels) | lock_labels(vm["run"], ttl_seconds, vm.get("holder"))
        if marking:
            labels |= mark_labels(vm["run"], now)
        return labels

    where = (vm["project"], vm["zone"], vm["instance"])
    locked = relabel_instance(hook, *where, change, attempts, instance=instance)
    if locked is None:
        raise RuntimeError(f"could not lock instance {vm['instance']}: it does not exist")
    return locked


def release_lock(
    hook: ComputeEngineHook, vm: VmRef, attempts: int = 8, *, instance: Any = None, record: bool = False
) -> bool:
    """Remove our lock (and the mark, when the VM is RUNNING again); False when the VM does not carry our lock.

    `instance`: the VM as the caller knows it (its status as our own DONE operations left it, its fingerprint as last
    read): saves a GET, and a stale fingerprint costs one. `record`: name our run as the one that released it
    (`released_by_us`; the backup window, which may run again), in the same call."""
    released = False

    def change(instance: Any) -> dict[str, str] | None:
        nonlocal released
        if not holds_our_lock(instance, vm):
            return None
        released = True
        labels = without_lock(instance.labels) | ({vmlabels.RELEASED_BY: vm["run"]} if record else {})
        return without_mark(labels) if instance.status == "RUNNING" else labels

    relabel_instance(hook, vm["project"], vm["zone"], vm["instance"], change, attempts, instance=instance)
    return released


def released_by_us(instance: Any, vm: VmRef) -> bool:
    """Our run held the instance and gave it back: a window of this run that runs again (a retried task, a trigger
    re-created after its event was lost) has been through it and does not stop it a second time."""
    return bool(instance.labels.get(vmlabels.RELEASED_BY) == vm["run"])


def clear_mark(hook: ComputeEngineHook, project: str, zone: str, name: str) -> bool:
    """Remove the stopped-by mark of a RUNNING VM that no run holds; True when the VM no longer carries it."""

    def change(instance: Any) -> dict[str, str] | None:
        if read_mark(instance.labels) is None:
            return None
        if instance.status != "RUNNING" or live_lock(instance, time.time()) is not None:
            return None
        return without_mark(instance.labels)

    instance = relabel_instance(hook, project, zone, name, change)
    return instance is None or read_mark(instance.labels) is None
