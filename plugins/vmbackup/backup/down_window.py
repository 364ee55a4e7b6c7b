"""The down window: from the stop request until the VM runs again, the VM waits on Compute Engine, not on Airflow.

One synchronous function (run_window) takes a batch of VMs through lock, stop, wait stopped, cut, wait taken,
start, wait RUNNING and unlock. It keeps no state of its own: what it has done is read back from Compute Engine
(our lock label says we stopped a VM; the deterministic snapshot names find earlier cuts), so running it again
after a worker or triggerer restart picks up where Compute Engine's state says, stops no VM twice and cuts no
snapshot twice. It is hosted as one task where no triggerer exists (batch_operators.DownWindowOperator) and as
one trigger where one does (down_window_trigger.DownWindowTrigger). A VM always ends as it began: every VM this window stopped is started again, whatever failed.

Tiers split the window in two phases: an earlier tier goes down (DOWN) and stays down while the later tiers are
backed up, then comes up (UP); the last tier runs both at once (FULL). maxUnavailable caps how many VMs of the
batch are down at once: VMs beyond the cap wait for a slot, and in the DOWN phase every VM but the last ones to go
down (at most the cap) comes back up before the next one goes down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Literal, TypedDict

from vmbackup.backup.lock_wait import raced_message
from vmbackup.backup.resolution import Target, vm_key
from vmbackup.backup.snapshot_cuts import cut_snapshots, cuts_made
from vmbackup.backup.window_guards import one_window_per_vm, project_cap
from vmbackup.compute.hook import (
    STOPPED_STATUSES,
    TAKEN,
    ComputeEngineHook,
    OperationRef,
    SnapshotFailedError,
    pending_snapshots,
)
from vmbackup.model.policy import BackupPolicy
from vmbackup.vm.lock import (
    InstanceHeldError,
    acquire_lock,
    foreign_lock,
    holds_our_lock,
    release_lock,
    released_by_us,
)
from vmbackup.vm.marked import restart_if_marked
from vmbackup.vm.power import (
    PowerError,
    in_status,
    is_spot,
    request_stop,
    start_until_running,
    timeout_message,
    wait_stopped,
)

log = logging.getLogger(__name__)

Phase = Literal["full", "down", "up"]
FULL: Phase = "full"
DOWN: Phase = "down"
UP: Phase = "up"

CUT_ATTEMPTS = 3  # tries of the cut while the VM is down, each after the hook's own retries ran out
# Said of a FAILED cut an earlier try made: Compute Engine's reason was in that try's operation, not on the snapshot.
EARLIER_TRY_NOTE = "cut by an earlier try of this run: its log has Compute Engine's reason"


# A VM's window failed at one of its steps (`step`); the VM has been returned to its prior state where possible.
WindowError = PowerError
TIMEOUT_FIELDS = {
    "stop": "spec.timeouts.stopSeconds",
    "snapshot": "spec.timeouts.snapshotSeconds",
    "start": "spec.timeouts.startSeconds",
}


class VmWindow(TypedDict, total=False):
    """What the window did to one VM: everything the run report needs."""

    instance: str
    zone: str
    tier: str | None
    prior_status: str | None
    skipped: str | None
    stop_requested_at: float | None  # epoch seconds
    stopped_at: str | None  # the stop operation's startTime (the VM stops serving)
    stopped: bool  # this window stopped the VM (it was RUNNING)
    snapshots: list[dict[str, Any]]
    taken_at: float | None
    started_at: str | None  # the start operation's endTime (RUNNING again)
    up: bool  # the VM is as it began (started again, or never stopped by us)
    error: str | None
    error_step: str | None
    note: str | None  # what the window found and did beyond the plan (a VM our earlier run left stopped, preempted)


class WindowTimeouts(TypedDict):
    stop_seconds: int
    snapshot_seconds: int
    start_seconds: int


def timeouts_of(policy: BackupPolicy) -> WindowTimeouts:
    t = policy.spec.timeouts
    return WindowTimeouts(
        stop_seconds=t.stop_seconds, snapshot_seconds=t.snapshot_seconds, start_seconds=t.start_seconds
    )


# -- one VM ---------------------------------------------------------------------------------------------------


class _Vm:
    """One VM's window. What it acts on is read from Compute Engine, and a read is not repeated where the window's
    own DONE operation already says the outcome (`seen`): calls count against the project's rate quotas."""

    def __init__(
        self,
        hook: ComputeEngineHook,
        policy: BackupPolicy,
        target: Target,
        slot: datetime | None,
        timeouts: WindowTimeouts,
        poll_seconds: float,
        lock_ttl_seconds: int,
        skip: str | None = None,
    ):
        self.hook = hook
        self.skip = skip
        self.policy = policy
        self.t = target
        self.slot = slot
        self.timeouts = timeouts
        self.poll = poll_seconds
        self.lock_ttl = lock_ttl_seconds
        # The VM as this window knows it (read after our lock, then as our DONE stop left it); None: read it.
        self.seen: Any = None
        self.result = VmWindow(
            instance=target["instance"],
            zone=target["zone"],
            tier=target.get("tier"),
            prior_status=None,
            skipped=None,
            stopped=False,
            snapshots=[],
            up=False,
            error=None,
            error_step=None,
        )

    def _get(self) -> Any:
        return self.hook.get_instance(self.t["project"], self.t["zone"], self.t["instance"])

    # the down part ------------------------------------------------------------------------------------------

    def down(self) -> bool:
        """Lock, stop, wait stopped, cut, wait taken. True when the VM is ours and down (it must come up again)."""
        r = self.result
        instance = self._get()
        ours = holds_our_lock(instance, self.t)
        # Only a window of this run that ran before (it holds the VM, or gave it back) can have cut already.
        made = cuts_made(self.hook, self.policy, self.t) if ours or released_by_us(instance, self.t) else None
        r["prior_status"] = "RUNNING" if ours else instance.status
        if made is not None:  # an earlier try cut them: it may have died before they left CREATING, or they failed
            r["snapshots"] = made
            r["stopped"] = ours
            log.info("%s: this run's snapshots exist already", self.t["instance"])
            self._wait_taken(made, earlier=True)
            return ours
        stop_ref: OperationRef | None = None
        if not ours and self.skip is not None:  # the lock wait before the window gave up on it
            r["skipped"], r["up"] = self.skip, True
            return False
        if not ours:
            held = foreign_lock(instance, self.t["run"], time.time())
            if held:  # locked since the lock wait looked: skipped, since waiting here would hold the window
                r["skipped"], r["up"] = raced_message(held), True
                log.warning("%s: %s", self.t["instance"], r["skipped"])
                return False
            instance = self._restart_marked(instance)
            if instance.status in STOPPED_STATUSES:  # stopped by its owner: no run of ours owes it a start
                log.info("%s is %s: it stays stopped and is snapshotted as it is", self.t["instance"], instance.status)
                if is_spot(instance):
                    r["note"] = (
                        f"a Spot VM found {instance.status} (preempted, or stopped by its owner): not ours to start"
                    )
                self._cut_and_wait()
                r["up"] = True
                return False
            if instance.status != "RUNNING":
                raise WindowError(
                    "stop",
                    f"instance {self.t['instance']} is {instance.status}; a consistent backup needs it RUNNING or "
                    "TERMINATED. It was not touched; the next run will try again.",
                )
            try:
                acquire_lock(self.hook, self.t, self.lock_ttl, instance=instance)
            except InstanceHeldError as exc:
                r["skipped"], r["up"] = raced_message(exc.lock), True
                log.warning("%s: %s", self.t["instance"], exc)
                return False
            instance = self._get()  # after our lock: the status we stop from, the fingerprint our release uses
            if instance.status != "RUNNING":  # a Spot VM preempted (or stopped) since we looked: ours to start
                r["note"] = f"{self.t['instance']} was {instance.status} when this run went to stop it (preempted?)"
                log.warning("%s", r["note"])
        r["stopped"] = True
        if instance.status == "RUNNING":
            log.info("Stopping instance %s in %s (project %s)", self.t["instance"], self.t["zone"], self.t["project"])
            r["stop_requested_at"] = time.time()
            local_ssd = bool(dict(self.t).get("discard_local_ssd", False))
            stop_ref = request_stop(self.hook, *self._where(), discard_local_ssd=local_ssd)
        if self._wait_stopped(stop_ref, instance) is not None:  # our stop is DONE: the VM is TERMINATED
            self.seen = in_status(instance, "TERMINATED")
        self._cut_and_wait()
        return True

    def _where(self) -> tuple[str, str, str]:
        return self.t["project"], self.t["zone"], self.t["instance"]

    def _restart_marked(self, instance: Any) -> Any:
        """A VM an earlier run of ours stopped and could not start (it carries the mark) is started first."""
        instance, note = restart_if_marked(
            self.hook,
            *self._where(),
            timeout_seconds=self.timeouts["start_seconds"],
            poll_seconds=self.poll,
            timeout_field=TIMEOUT_FIELDS["start"],
            instance=instance,
        )
        if note:
            self.result["note"], self.result["prior_status"] = note, instance.status
        return instance

    def _wait_stopped(self, ref: OperationRef | None, instance: Any) -> Any:
        """The stop operation once DONE (None: no stop of ours to wait on); `instance` as read before the stop."""
        op = wait_stopped(
            self.hook,
            *self._where(),
            ref,
            since=self.result.get("stop_requested_at") or time.time(),
            timeout_seconds=self.timeouts["stop_seconds"],
            poll_seconds=self.poll,
            timeout_field=TIMEOUT_FIELDS["stop"],
            instance=instance,
        )
        if op is not None:
            self.result["stopped_at"] = op.start_time or None
        return op

    def _timeout_message(self, what: str, kind: str, timeout: int) -> str:
        return timeout_message(what, timeout, TIMEOUT_FIELDS[kind])

    def _cut_and_wait(self) -> None:
        cuts = self._cut()
        self.result["snapshots"] = cuts
        self._wait_taken(cuts)

    def _wait_taken(self, cuts: list[dict[str, Any]], *, earlier: bool = False) -> None:
        """Until every cut has left CREATING (the disk may change again); a FAILED cut fails the VM's window.

        `earlier`: the cuts are an earlier try's, found by name; their operations (and so Compute Engine's reason
        for a failure) are that try's, so the message points to it.
        """
        timeout = self.timeouts["snapshot_seconds"]
        deadline = time.time() + timeout
        if not earlier:
            time.sleep(self.poll)  # a cut just asked for is CREATING: the first look comes a poll later
        while True:
            try:
                states = self.hook.snapshot_states(self.t["project"], cuts)
            except SnapshotFailedError as exc:
                why = f" ({EARLIER_TRY_NOTE})" if earlier else ""
                raise WindowError("wait_snapshots_taken", f"{exc}{why}") from None
            pending = pending_snapshots(states, TAKEN)
            if not pending:
                self.result["taken_at"] = time.time()
                return
            if time.time() >= deadline:
                names = ", ".join(f"{n}={s}" for n, s in sorted(pending.items()))
                raise WindowError(
                    "wait_snapshots_taken", self._timeout_message(f"snapshots {names}", "snapshot", timeout)
                )
            time.sleep(self.poll)

    def _cut(self) -> list[dict[str, Any]]:
        """cut_snapshots, tried again while the VM is down when Compute Engine kept failing a call (the hook's own
        retries ran out): the names are deterministic, so a second try finds what the first one made."""
        from vmbackup.airflow_compat import AirflowFailException

        for attempt in range(1, CUT_ATTEMPTS + 1):
            try:
                return list(cut_snapshots(self.hook, self.policy, self.t, self.slot))
            except AirflowFailException as exc:  # a verdict (a snapshot of that name made by someone else)
                raise WindowError("snapshot", str(exc)) from None
            except Exception as exc:
                if attempt == CUT_ATTEMPTS:
                    raise WindowError("snapshot", str(exc) or type(exc).__name__) from exc
                log.warning("%s: cutting snapshots failed (%s); trying again", self.t["instance"], exc)
                time.sleep(self.poll)
        raise AssertionError("unreachable")

    # the up part --------------------------------------------------------------------------------------------

    def up(self) -> None:
        """Start the VM again if this run holds it (resume a SUSPENDED one), until RUNNING, then release the lock.

        A stockout is tried again until spec.timeouts.startSeconds; a VM still not running keeps the mark."""
        r = self.result
        instance = self.seen if self.seen is not None else self.hook.find_instance(*self._where())
        if instance is None or not holds_our_lock(instance, self.t):
            r["up"] = True
            return
        if instance.status != "RUNNING":
            log.info("Starting instance %s in %s (it was RUNNING before this run)", self.t["instance"], self.t["zone"])
        started = start_until_running(
            self.hook,
            *self._where(),
            timeout_seconds=self.timeouts["start_seconds"],
            poll_seconds=self.poll,
            timeout_field=TIMEOUT_FIELDS["start"],
            stopping_seconds=self.timeouts["stop_seconds"],
            instance=instance,
        )
        r["started_at"] = started.ended_at or r.get("started_at")
        if started.stockouts:
            r["note"] = f"started after {len(started.stockouts)} stockout(s): {started.stockouts[-1]}"
        try:
            release_lock(self.hook, self.t, instance=in_status(instance, "RUNNING"), record=True)
        except Exception as exc:
            raise WindowError("release_lock", str(exc) or type(exc).__name__) from exc
        r["up"] = True


# -- a batch --------------------------------------------------------------------------------------------------


def run_window(
    hook: ComputeEngineHook,
    policy: BackupPolicy,
    targets: list[Target],
    slot: datetime | None,
    phase: Phase,
    *,
    max_unavailable: int,
    project_limit: int,
    poll_seconds: float,
    lock_ttl_seconds: int,
    skips: Mapping[str, str] | None = None,
) -> list[VmWindow]:
    """Take a batch of VMs through `phase`; at most max_unavailable of them down at once. Never raises for a VM:
    each result carries its error, and every VM this window stopped is started again (outside the DOWN phase).
    `skips` (by resolution.vm_key) are VMs the lock wait gave up on: recorded as skipped, never touched."""
    timeouts = timeouts_of(policy)
    skips = skips or {}
    vms = [_Vm(hook, policy, t, slot, timeouts, poll_seconds, lock_ttl_seconds, skips.get(vm_key(t))) for t in targets]
    if not vms:
        return []
    if phase == UP:
        max_unavailable = len(vms)  # nothing goes down
    slots = threading.BoundedSemaphore(max(1, max_unavailable))
    cap = project_cap(policy.spec.project, max(1, project_limit))
    # In the DOWN phase the last VMs to go down (at most the cap) stay down for the later tiers.
    held_from = len(vms) - max(1, max_unavailable) if phase == DOWN else len(vms)

    def one(index: int, vm: _Vm) -> None:
        stays_down = False
        try:
            with one_window_per_vm(vm.t, phase) as seat, cap:
                if seat.earlier is not None:  # this VM's window of this run and phase ended while this one waited
                    log.info("%s: an earlier window of this run just ended; its result stands", vm.t["instance"])
                    vm.result.update(seat.earlier)
                elif phase == UP:
                    _guarded(vm, vm.up)
                else:
                    ours = _guarded(vm, vm.down)
                    held = phase == DOWN and index >= held_from and ours is True and vm.result.get("error") is None
                    if not held:  # a held VM stays down for the later tiers; the UP phase starts it
                        _guarded(vm, vm.up)  # always, also after a failure: the VM ends as it began
                seat.earlier = VmWindow(**vm.result)
                stays_down = phase == DOWN and not vm.result.get("up") and vm.result.get("error") is None
        finally:
            if not stays_down:
                slots.release()

    workers = min(len(vms), max(1, max_unavailable), max(1, project_limit))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vmbackup-vm") as pool:
        futures = []
        for index, vm in enumerate(vms):
            slots.acquire()  # in order: the cap holds however the VMs' windows interleave
            futures.append(pool.submit(one, index, vm))
        for future in futures:
            future.result()
    return [vm.result for vm in vms]


def _guarded(vm: _Vm, part: Callable[[], Any]) -> Any:
    """Run one part of a VM's window; a failure is recorded on the VM's result (the first one wins)."""
    try:
        return part()
    except WindowError as exc:
        log.error("%s: %s failed: %s", vm.t["instance"], exc.step, exc)
        _record(vm, exc.step, str(exc))
    except Exception as exc:  # a bug or an unexpected answer: still the VM's error, and the others go on
        log.exception("%s: the down window failed", vm.t["instance"])
        _record(vm, "down_window", str(exc) or type(exc).__name__)
    return None


def _record(vm: _Vm, step: str, message: str) -> None:
    if vm.result.get("error") is None:
        vm.result["error"], vm.result["error_step"] = message, step
