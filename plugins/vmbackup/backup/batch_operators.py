"""The steps of the backup DAG over a batch of VMs: the down window (stop mode) and the cut (other modes).

Each step keeps every VM's record for the report (an XCom pushed also when the step fails), then fails when any
of its VMs failed. backup/down_window.py does the work; these only host it (a task, a trigger, a reschedule).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from vmbackup.airflow_compat import (
    CONTROL_FLOW_EXCEPTIONS,
    AirflowException,
    AirflowFailException,
    AirflowRescheduleException,
    BaseSensorOperator,
    first_reschedule_date,
)
from vmbackup.backup.lock_wait import lock_verdict
from vmbackup.backup.resolution import Target, vm_key
from vmbackup.backup.slot_check import scheduled_slot
from vmbackup.backup.snapshot_cuts import cut_snapshots
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.compute.step_operator import record_error
from vmbackup.model.policy import BackupPolicy
from vmbackup.policy_task import PolicyTask
from vmbackup.vm.lock import foreign_lock, foreign_lock_in, held_message

log = logging.getLogger(__name__)

T = TypeVar("T")

WINDOW_KEY = "vmbackup_window"  # XCom key of a batch step's per-VM results, pushed also when the step fails


def batch_result(vms: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch step's result: each VM's record and every snapshot it cut (what wait_snapshots_ready waits on)."""
    snapshots = [cut for vm in vms if not vm.get("skipped") for cut in vm.get("snapshots") or []]
    only = vms[0] if len(vms) == 1 else {}
    return {"vms": vms, "snapshots": snapshots, "instance": only.get("instance"), "zone": only.get("zone")}


def window_record(context: Any, task_id: str) -> dict[str, Any] | None:
    """The record a batch step of this mapped group left at this task's map index (also when it failed)."""
    ti = context["ti"]
    value = ti.xcom_pull(task_ids=task_id, key=WINDOW_KEY, map_indexes=ti.map_index)
    if isinstance(value, list):  # some lines answer a one-index pull with a list
        value = next((v for v in value if v is not None), None)
    return value if isinstance(value, dict) else None


class _BatchStep(PolicyTask, BaseSensorOperator):
    """A step over a batch of VMs: every VM's result is kept for the report, then the step fails if any VM failed.

    A VM's failure is Compute Engine's verdict or a timeout, and the VM has been returned to its prior state: a
    retry would take it down a second time, so the step fails without retries (a worker or triggerer lost midway
    is still retried by Airflow, and the window picks up from Compute Engine's state).

    A sensor in reschedule mode only so that the down window can wait for another run's lock without holding a
    worker slot between looks; execute() is the step itself, not a poke loop.
    """

    template_fields: tuple[str, ...] = ("batch",)
    ui_color = "#e8f0fe"
    policy_json: str  # always given when built (the trigger it defers to carries it)

    def __init__(self, *, batch: Any, policy_json: str, **kwargs: Any):
        kwargs.setdefault("timeout", 24 * 3600)  # unused: execute() bounds every wait itself
        super().__init__(mode="reschedule", **kwargs)
        self.batch = batch
        self.policy_json = policy_json

    def poke(self, context: Any) -> bool:  # pragma: no cover - execute() is overridden
        raise NotImplementedError

    def _targets(self) -> list[Target]:
        return list(self.batch or [])

    def _finish(self, context: Any, vms: list[dict[str, Any]]) -> dict[str, Any]:
        result = batch_result(vms)
        context["ti"].xcom_push(key=WINDOW_KEY, value=result)
        failed = [vm for vm in vms if vm.get("error")]
        if failed:
            detail = "; ".join(f"{vm['instance']}: {vm.get('error_step')}: {vm['error']}" for vm in failed)
            raise AirflowFailException(f"{len(failed)} of {len(vms)} VM(s) failed: {detail}")
        return result

    def _recorded(self, context: Any, step: Callable[[], T]) -> T:
        try:
            return step()
        except CONTROL_FLOW_EXCEPTIONS:
            raise
        except AirflowFailException:  # the VMs' own errors, already in the step's result
            raise
        except Exception as exc:
            record_error(context, exc)
            raise


class DownWindowOperator(_BatchStep):
    """The down window of a batch of VMs (backup/down_window.py), as one task or deferred to one trigger.

    Before any VM goes down, VMs another run holds are waited for (backup/lock_wait.py): the task reschedules
    itself every poke_interval, holding no worker slot, until they are free or the wait is over.
    """

    ui_color = "#fce8e6"

    def __init__(
        self,
        *,
        phase: str,
        deferrable: bool,
        poll_seconds: float,
        lock_ttl_seconds: int,
        project_limit: int,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.phase = phase
        self.deferrable = deferrable
        self.poll_seconds = poll_seconds
        self.lock_ttl_seconds = lock_ttl_seconds
        self.project_limit = project_limit

    def execute(self, context: Any) -> Any:
        return self._recorded(context, lambda: self._start(context))

    def _start(self, context: Any) -> Any:
        from vmbackup.backup.down_window import UP, run_window
        from vmbackup.backup.down_window_trigger import DownWindowTrigger

        policy = self.policy
        targets = self._targets()
        if not targets:
            return self._finish(context, [])
        cap = policy.spec.unavailable_cap(len(targets))
        slot = scheduled_slot(context)
        hook = ComputeEngineHook()
        skips = {} if self.phase == UP else self._wait_for_locks(context, hook, policy, targets, slot)
        if not self.deferrable:
            vms = run_window(
                hook,
                policy,
                targets,
                slot,
                self.phase,  # type: ignore[arg-type]
                max_unavailable=cap,
                project_limit=self.project_limit,
                poll_seconds=self.poll_seconds,
                lock_ttl_seconds=self.lock_ttl_seconds,
                skips=skips,
            )
            return self._finish(context, [dict(vm) for vm in vms])
        t = policy.spec.timeouts
        waves = -(-len(targets) // cap)
        backstop = waves * (t.stop_seconds + t.snapshot_seconds + 2 * t.start_seconds) + 600
        self.defer(
            trigger=DownWindowTrigger(
                policy_json=self.policy_json,
                targets=[dict(target) for target in targets],
                slot=slot.isoformat() if slot else None,
                phase=self.phase,
                max_unavailable=cap,
                project_limit=self.project_limit,
                poll_seconds=self.poll_seconds,
                lock_ttl_seconds=self.lock_ttl_seconds,
                endpoint=hook.endpoint,
                skips=skips,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=backstop),
        )

    def _wait_for_locks(
        self, context: Any, hook: ComputeEngineHook, policy: BackupPolicy, targets: list[Target], slot: Any
    ) -> dict[str, str]:
        """The VMs to skip (held past the wait, or too late now); reschedules while a held VM is worth waiting for."""
        first = first_reschedule_date(context)
        now = datetime.now(UTC)
        waited = 0.0 if first is None else max(0.0, now.timestamp() - first.timestamp())
        locks = {}
        for t in targets:
            labels = self._fresh_lock_labels(t, now.timestamp()) if first is None else None
            if labels is not None:  # the resolve step's read is as fresh as a look of this wait: not read again
                locks[vm_key(t)] = foreign_lock_in(labels, t["run"], now.timestamp())
                continue
            instance = hook.find_instance(t["project"], t["zone"], t["instance"])
            locks[vm_key(t)] = foreign_lock(instance, t["run"], now.timestamp()) if instance is not None else None
        verdict = lock_verdict(policy, locks, waited, first is not None, slot, now)
        if verdict.wait:
            held = ", ".join(f"{key} {held_message(lock)}" for key, lock in locks.items() if lock is not None)
            log.info("waiting for %s (%.0f s of %d s)", held, waited, policy.spec.timeouts.lock_wait_seconds)
            raise AirflowRescheduleException(now + timedelta(seconds=self.poke_interval))
        for key, reason in verdict.skips.items():
            log.warning("%s: %s", key, reason)
        return verdict.skips

    def _fresh_lock_labels(self, t: Target, now: float) -> dict[str, str] | None:
        """The target's lock labels as the resolve step read them, when that read is younger than one poke interval
        (what this wait's next look would be); None: look again."""
        read_at = t.get("read_at")
        if read_at is None or "lock_labels" not in t or now - float(read_at) > float(self.poke_interval):
            return None
        return dict(t["lock_labels"])

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        return self._recorded(context, lambda: self._resumed(event, context))

    def _resumed(self, event: dict[str, Any] | None, context: Any) -> Any:
        if not event or event.get("status") != "done":
            raise AirflowException(f"the down window ended without a result: {(event or {}).get('message')!r}")
        return self._finish(context, list(event["vms"]))


class SnapshotBatchOperator(_BatchStep):
    """Cuts the snapshots of a batch of running VMs (consistency none or guestFlush: no VM goes down)."""

    def execute(self, context: Any) -> Any:
        return self._recorded(context, lambda: self._cut(context))

    def _cut(self, context: Any) -> Any:
        policy = self.policy
        slot = scheduled_slot(context)
        hook = ComputeEngineHook()
        vms: list[dict[str, Any]] = []
        for t in self._targets():
            vm: dict[str, Any] = {"instance": t["instance"], "zone": t["zone"], "tier": t.get("tier"), "error": None}
            try:
                vm["snapshots"] = cut_snapshots(hook, policy, t, slot)
            except Exception as exc:
                log.error("%s: snapshot failed: %s", t["instance"], exc)
                vm.update(snapshots=[], error=str(exc) or type(exc).__name__, error_step="snapshot")
            vms.append(vm)
        return self._finish(context, vms)
