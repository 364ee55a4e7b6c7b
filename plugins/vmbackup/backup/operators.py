"""Operators of the backup workflow: each starts Compute Engine work and returns what the next step needs.

As in the Composer tutorial, Stop/Snapshot/Start start an operation and return its name through XCom; a
sensor waits for it. Our return values are small dicts (operation name plus scope, and the instance they
concern), so each sensor knows where to look and the report knows what happened to which VM.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from vmbackup.airflow_compat import AirflowFailException, PokeReturnValue, first_reschedule_date
from vmbackup.backup.lock_wait import lock_verdict
from vmbackup.backup.resolution import Resolution, Target, batched, group_keys, resolve_targets
from vmbackup.backup.slot_check import missed_slot, scheduled_slot
from vmbackup.backup.snapshot_cuts import cut_snapshots
from vmbackup.compute.hook import STOPPED_STATUSES, ComputeEngineHook
from vmbackup.compute.sensors import OperationStatusSensor, _RecordingSensor
from vmbackup.compute.step_operator import ComputeStepOperator, now_iso
from vmbackup.model.identifiers import Lock
from vmbackup.policy_task import PolicyTask
from vmbackup.settings import max_map_length
from vmbackup.vm.lock import InstanceHeldError, acquire_lock, foreign_lock, held_message, holds_our_lock, release_lock
from vmbackup.vm.marked import restart_if_marked, start_if_ours
from vmbackup.vm.power import request_stop

log = logging.getLogger(__name__)


class ResolveInstancesOperator(PolicyTask, ComputeStepOperator):
    """Finds this run's instances and disks (explicit list or label selector) and names their snapshots."""

    def __init__(self, *, policy_json: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.policy_json = policy_json

    def run_step(self, context: Any, hook: ComputeEngineHook) -> Any:
        policy = self.policy
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


class StopInstanceOperator(PolicyTask, _RecordingSensor):
    """Stops a RUNNING instance (after locking it) and returns the stop operation; a stopped one is left alone.

    A VM that another run holds (another policy's backup, a restore) is waited for, in reschedule mode so no
    worker slot is held between looks, for up to spec.timeouts.lockWaitSeconds; then it is skipped with the
    holder named. A wait never carries the stop past the starting deadline or out of the maintenance window
    (slot_check.too_late). Returns {"instance", "zone", "prior_status", "operation": OperationRef | None,
    "skipped": reason | None}.
    """

    template_fields = ("target",)
    ui_color = "#e8f0fe"

    def __init__(self, *, target: Any, policy_json: str, lock_ttl_seconds: int, **kwargs: Any):
        self.policy_json = policy_json  # set before the sensor's __init__, which needs the policy's timeouts
        self.lock_wait_seconds = self.policy.spec.timeouts.lock_wait_seconds
        self.start_seconds = self.policy.spec.timeouts.start_seconds
        # The sensor's own timeout only backs up poke(), which ends the wait itself (skipping, never failing).
        super().__init__(timeout=self.lock_wait_seconds + 3600, **kwargs)
        self.target = target
        self.lock_ttl_seconds = lock_ttl_seconds

    def _subject(self) -> Any:
        return self.target if isinstance(self.target, dict) else None

    def poke(self, context: Any) -> PokeReturnValue:
        t: Target = self.target
        hook = ComputeEngineHook()
        instance = hook.get_instance(t["project"], t["zone"], t["instance"])
        looked = self._look(context, foreign_lock(instance, t["run"], time.time()))
        if looked is not None:
            return looked
        ours = holds_our_lock(instance, t)  # a retry of this task after it already stopped the VM
        if not ours:  # a VM an earlier run of ours left stopped (the mark) is started first, never cut as it is
            instance, _ = restart_if_marked(
                hook,
                t["project"],
                t["zone"],
                t["instance"],
                timeout_seconds=self.start_seconds,
                poll_seconds=1.0,
                timeout_field="spec.timeouts.startSeconds",
                instance=instance,
            )
        if instance.status in STOPPED_STATUSES and not ours:
            log.info("%s is %s: it stays stopped and is snapshotted as it is", t["instance"], instance.status)
            return self._done({"prior_status": instance.status})
        if instance.status != "RUNNING" and not ours:
            raise AirflowFailException(
                f"instance {t['instance']} is {instance.status}; a consistent backup needs it RUNNING or "
                "TERMINATED. It was not touched; the next run will try again."
            )
        try:
            acquire_lock(hook, t, self.lock_ttl_seconds)
        except InstanceHeldError as exc:  # another run locked it between our look and our lock
            return self._look(context, exc.lock) or PokeReturnValue(is_done=False)
        log.info("Stopping instance %s in %s (project %s)", t["instance"], t["zone"], t["project"])
        local_ssd = t.get("discard_local_ssd", False)
        ref = request_stop(hook, t["project"], t["zone"], t["instance"], discard_local_ssd=local_ssd)
        return self._done({"prior_status": "RUNNING", "operation": ref, "requested_at": now_iso()})

    def _look(self, context: Any, lock: Lock | None) -> PokeReturnValue | None:
        """Wait on (not done), give up on the VM (done, skipped), or None: go on and stop it."""
        first = first_reschedule_date(context)
        waited = 0.0 if first is None else max(0.0, time.time() - first.timestamp())
        policy = self.policy
        verdict = lock_verdict(policy, {0: lock}, waited, first is not None, scheduled_slot(context), datetime.now(UTC))
        if verdict.wait:
            log.info(
                "%s: %s; waiting (%.0f s of %d s)",
                self.target["instance"],
                held_message(lock) if lock else "held",
                waited,
                self.lock_wait_seconds,
            )
            return PokeReturnValue(is_done=False)
        if 0 in verdict.skips:
            log.warning("%s: %s", self.target["instance"], verdict.skips[0])
            return self._done({"prior_status": self.target["status"], "skipped": verdict.skips[0]})
        return None

    def _done(self, found: dict[str, Any]) -> PokeReturnValue:
        t: Target = self.target
        result: dict[str, Any] = {"instance": t["instance"], "zone": t["zone"], "operation": None, "skipped": None}
        return PokeReturnValue(is_done=True, xcom_value=result | found)


class SnapshotDiskOperator(PolicyTask, ComputeStepOperator):
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
        policy = self.policy
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
