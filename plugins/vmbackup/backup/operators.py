"""Operators of the backup workflow: each starts Compute Engine work and returns what the next step needs.

As in the Composer tutorial, Stop/Snapshot/Start start an operation and return its name through XCom; a
sensor waits for it. Our return values are small dicts (operation name plus scope, and the instance they
concern), so each sensor knows where to look and the report knows what happened to which VM.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from vmbackup.airflow_compat import CONTROL_FLOW_EXCEPTIONS, AirflowException, AirflowFailException, BaseOperator
from vmbackup.backup.lock import (
    InstanceHeldError,
    acquire_lock,
    foreign_lock,
    holds_our_lock,
    release_lock,
    start_if_ours,
)
from vmbackup.backup.resolution import Resolution, Target, batched, group_keys, resolve_targets
from vmbackup.backup.slot_check import missed_slot, scheduled_slot
from vmbackup.backup.snapshot_cuts import cut_snapshots
from vmbackup.compute.hook import STOPPED_STATUSES, ComputeEngineHook
from vmbackup.compute.sensors import OperationStatusSensor
from vmbackup.compute.step_operator import ComputeStepOperator, now_iso, record_error
from vmbackup.model.policy import BackupPolicy
from vmbackup.settings import max_map_length

log = logging.getLogger(__name__)


class ResolveInstancesOperator(ComputeStepOperator):
    """Finds this run's instances and disks (explicit list or label selector) and names their snapshots."""

    def __init__(self, *, policy_json: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.policy_json = policy_json

    def run_step(self, context: Any, hook: ComputeEngineHook) -> Any:
        policy = BackupPolicy.from_json(self.policy_json)
        slot = scheduled_slot(context)
        missed = missed_slot(policy, slot, datetime.now(UTC), hook) if slot is not None else None
        if missed is not None:  # before any instance is even read: the run touches nothing
            log.warning("slot %s missed (%s): %s", slot, missed.reason, missed.message)
            nothing: Resolution = {
                "groups": {key: [] for key in group_keys(policy)},
                "batches": {key: [] for key in group_keys(policy)},
                "skipped": [],
                "errors": [],
            }
            return nothing | {"slot": slot.isoformat() if slot else None, "missed": missed.model_dump(mode="json")}
        resolution = resolve_targets(policy, context["run_id"], hook)
        resolution["batches"] = batched(policy, resolution["groups"], max_map_length())
        resolution["slot"] = slot.isoformat() if slot else None
        for group, members in resolution["groups"].items():
            log.info("%s: %s", group, ", ".join(f"{t['instance']} ({t['zone']})" for t in members) or "no instance")
        for item in resolution["skipped"] + resolution["errors"]:
            log.warning("%s (%s): %s", item["instance"], item["zone"], item["reason"])
        return resolution


# -- the three Compute Engine steps --------------------------------------------------------------------------


class StopInstanceOperator(ComputeStepOperator):
    """Stops a RUNNING instance (after locking it) and returns the stop operation; a stopped one is left alone.

    Returns {"instance", "zone", "prior_status", "operation": OperationRef | None, "skipped": reason | None}.
    """

    template_fields = ("target",)

    def __init__(self, *, target: Any, lock_ttl_seconds: int, **kwargs: Any):
        super().__init__(target=target, **kwargs)
        self.lock_ttl_seconds = lock_ttl_seconds

    def run_step(self, context: Any, hook: ComputeEngineHook) -> dict[str, Any]:
        t: Target = self.target
        result: dict[str, Any] = {"instance": t["instance"], "zone": t["zone"], "operation": None, "skipped": None}
        instance = hook.get_instance(t["project"], t["zone"], t["instance"])
        held = foreign_lock(instance, t["run"], time.time())
        if held:
            log.warning("%s: %s", t["instance"], held)
            return result | {"prior_status": instance.status, "skipped": held}
        ours = holds_our_lock(instance, t)  # a retry of this task after it already stopped the VM
        if instance.status in STOPPED_STATUSES and not ours:
            log.info("%s is %s: it stays stopped and is snapshotted as it is", t["instance"], instance.status)
            return result | {"prior_status": instance.status}
        if instance.status != "RUNNING" and not ours:
            raise AirflowFailException(
                f"instance {t['instance']} is {instance.status}; a consistent backup needs it RUNNING or "
                "TERMINATED. It was not touched; the next run will try again."
            )
        try:
            acquire_lock(hook, t, self.lock_ttl_seconds)
        except InstanceHeldError as exc:
            log.warning("%s: %s", t["instance"], exc)
            return result | {"prior_status": instance.status, "skipped": str(exc)}
        log.info("Stopping instance %s in %s (project %s)", t["instance"], t["zone"], t["project"])
        ref = hook.stop_instance(t["project"], t["zone"], t["instance"])
        return result | {"prior_status": "RUNNING", "operation": ref, "requested_at": now_iso()}


class SnapshotDiskOperator(ComputeStepOperator):
    """Starts one snapshot per disk of the instance (all at once: Compute Engine runs them in parallel).

    Names are deterministic per run and disk, so a retried task finds its snapshot instead of making a
    second one. Returns {"instance", "zone", "snapshots": [{"name", "disk", "operation"}], "skipped"}.
    """

    template_fields = ("target", "stop_result")

    def __init__(
        self,
        *,
        target: Any,
        policy_json: str,
        stop_result: Any = None,
        **kwargs: Any,
    ):
        super().__init__(target=target, **kwargs)
        self.stop_result = stop_result
        self.policy_json = policy_json

    def run_step(self, context: Any, hook: ComputeEngineHook) -> dict[str, Any]:
        t: Target = self.target
        result: dict[str, Any] = {"instance": t["instance"], "zone": t["zone"], "snapshots": [], "skipped": None}
        if isinstance(self.stop_result, dict) and self.stop_result.get("skipped"):
            return result | {"skipped": self.stop_result["skipped"]}
        policy = BackupPolicy.from_json(self.policy_json)
        return result | {"snapshots": cut_snapshots(hook, policy, t, scheduled_slot(context))}


class StartInstanceOperator(ComputeStepOperator):
    """Starts the instance again when this run stopped it, even if snapshotting failed (trigger rule all_done).

    Whether "this run stopped it" is read from the instance itself (our lock label), so it holds after
    retries and partial failures. Returns {"instance", "zone", "operation": OperationRef | None}.
    """

    template_fields = ("target",)

    def __init__(self, *, target: Any, stopping_timeout_seconds: int = 600, **kwargs: Any):
        super().__init__(target=target, **kwargs)
        self.stopping_timeout_seconds = stopping_timeout_seconds

    def run_step(self, context: Any, hook: ComputeEngineHook) -> dict[str, Any]:
        t: Target = self.target
        ref = start_if_ours(hook, t, self.stopping_timeout_seconds)
        return {"instance": t["instance"], "zone": t["zone"], "operation": ref, "requested_at": now_iso()}


class InstanceStartedSensor(OperationStatusSensor):
    """Waits for the start operation, then removes this run's lock from the instance."""

    template_fields: tuple[str, ...] = ("operation", "target")

    def __init__(self, *, target: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.target = target

    def _subject(self) -> Any:
        return self.target if isinstance(self.target, dict) else None

    def on_done(self, context: Any) -> None:
        if isinstance(self.target, dict):
            release_lock(ComputeEngineHook(), self.target)  # type: ignore[arg-type]


# -- the down window and the batch steps -----------------------------------------------------------------------

WINDOW_KEY = "vmbackup_window"  # XCom key of a batch step's per-VM results, pushed also when the step fails


def batch_result(vms: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch step's result: each VM's record and every snapshot it cut (what wait_snapshots_ready waits on)."""
    snapshots = [cut for vm in vms if not vm.get("skipped") for cut in vm.get("snapshots") or []]
    only = vms[0] if len(vms) == 1 else {}
    return {"vms": vms, "snapshots": snapshots, "instance": only.get("instance"), "zone": only.get("zone")}


class _BatchStep(BaseOperator):
    """A step over a batch of VMs: every VM's result is kept for the report, then the step fails if any VM failed.

    A VM's failure is Compute Engine's verdict or a timeout, and the VM has been returned to its prior state: a
    retry would take it down a second time, so the step fails without retries (a worker or triggerer lost midway
    is still retried by Airflow, and the window picks up from Compute Engine's state).
    """

    template_fields: tuple[str, ...] = ("batch",)
    ui_color = "#e8f0fe"

    def __init__(self, *, batch: Any, policy_json: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.batch = batch
        self.policy_json = policy_json

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

    def _recorded(self, context: Any, step: Any) -> Any:
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
    """The down window of a batch of VMs (backup/down_window.py), as one task or deferred to one trigger."""

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
        from vmbackup.backup.down_window import DownWindowTrigger, run_window

        policy = BackupPolicy.from_json(self.policy_json)
        targets = self._targets()
        if not targets:
            return self._finish(context, [])
        cap = policy.spec.unavailable_cap(len(targets))
        slot = scheduled_slot(context)
        hook = ComputeEngineHook()
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
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=backstop),
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        return self._recorded(context, lambda: self._resumed(context, event))

    def _resumed(self, context: Any, event: dict[str, Any] | None) -> Any:
        if not event or event.get("status") != "done":
            raise AirflowException(f"the down window ended without a result: {(event or {}).get('message')!r}")
        return self._finish(context, list(event["vms"]))


class SnapshotBatchOperator(_BatchStep):
    """Cuts the snapshots of a batch of running VMs (consistency none or guestFlush: no VM goes down)."""

    def execute(self, context: Any) -> Any:
        return self._recorded(context, lambda: self._cut(context))

    def _cut(self, context: Any) -> Any:
        policy = BackupPolicy.from_json(self.policy_json)
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
