"""Operators of the backup workflow: each starts Compute Engine work and returns what the next step needs.

As in the Composer tutorial, Stop/Snapshot/Start start an operation and return its name through XCom; a
sensor waits for it. Our return values are small dicts (operation name plus scope, and the instance they
concern), so each sensor knows where to look and the report knows what happened to which VM.

Every step records its failure under the XCom key `vmbackup_error` before failing, so the run report can
quote each failed step's own message.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import vmbackup.model.labels as vmlabels
from vmbackup.airflow_compat import CONTROL_FLOW_EXCEPTIONS, AirflowFailException, BaseOperator
from vmbackup.backup.resolution import Target, resolve_targets
from vmbackup.compute.hook import ComputeEngineHook, OperationRef
from vmbackup.model.identifiers import lock_value, parse_lock
from vmbackup.model.policy import BackupPolicy

log = logging.getLogger(__name__)

ERROR_KEY = "vmbackup_error"
STOPPED_STATUSES = ("TERMINATED", "STOPPED", "SUSPENDED")


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def record_error(context: Any, exc: BaseException, target: Target | None = None, disk: str | None = None) -> None:
    """Leave the failure's message where the report task finds it (pushing must never hide the failure)."""
    try:
        context["ti"].xcom_push(
            key=ERROR_KEY,
            value={
                "step": context["ti"].task_id,
                "instance": target["instance"] if target else None,
                "zone": target["zone"] if target else None,
                "disk": disk,
                "message": str(exc) or type(exc).__name__,
            },
        )
    except Exception:  # pragma: no cover - best effort
        log.exception("could not record the error of %s", context["ti"].task_id)


class BackupStepOperator(BaseOperator):
    """Base of our operators: a hook per task execution, and failures recorded for the report."""

    ui_color = "#e8f0fe"

    def __init__(self, *, target: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.target = target

    def execute(self, context: Any) -> Any:
        hook = ComputeEngineHook()
        try:
            return self.run_step(context, hook)
        except CONTROL_FLOW_EXCEPTIONS:
            raise
        except Exception as exc:
            record_error(context, exc, self.target if isinstance(self.target, dict) else None)  # type: ignore[arg-type]
            raise

    def run_step(self, context: Any, hook: ComputeEngineHook) -> Any:
        raise NotImplementedError


class ResolveInstancesOperator(BackupStepOperator):
    """Finds this run's instances and disks (explicit list or label selector) and names their snapshots."""

    def __init__(self, *, policy_json: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.policy_json = policy_json

    def run_step(self, context: Any, hook: ComputeEngineHook) -> Any:
        policy = BackupPolicy.from_json(self.policy_json)
        resolution = resolve_targets(policy, context["run_id"], hook)
        for group, members in resolution["groups"].items():
            log.info("%s: %s", group, ", ".join(f"{t['instance']} ({t['zone']})" for t in members) or "no instance")
        for item in resolution["skipped"] + resolution["errors"]:
            log.warning("%s (%s): %s", item["instance"], item["zone"], item["reason"])
        return resolution


# -- the instance lock -------------------------------------------------------------------------------------


class InstanceHeldError(Exception):
    """Another run holds the instance (its lock label has not expired)."""


def _foreign_lock(instance: Any, run: str, now: float) -> str | None:
    lock = parse_lock(instance.labels.get(vmlabels.LOCK))
    if lock and lock[0] != run and lock[1] > now:
        until = datetime.fromtimestamp(lock[1], UTC).isoformat()
        return f"another backup run ({lock[0]}) holds this instance until {until}; skipped so it is not stopped twice"
    return None


def acquire_lock(hook: ComputeEngineHook, target: Target, ttl_seconds: int, attempts: int = 8) -> Any:
    """Set our lock label with labelFingerprint concurrency; returns the instance as it is after locking."""
    for _ in range(attempts):
        instance = hook.get_instance(target["project"], target["zone"], target["instance"])
        held = _foreign_lock(instance, target["run"], time.time())
        if held:
            raise InstanceHeldError(held)
        lock = parse_lock(instance.labels.get(vmlabels.LOCK))
        if lock and lock[0] == target["run"]:
            return instance
        labels = dict(instance.labels)
        labels[vmlabels.LOCK] = lock_value(target["run"], ttl_seconds)
        if _set_labels(hook, target, labels, instance.label_fingerprint):
            continue  # re-read: confirms our lock (or meets the run that won the race)
    raise RuntimeError(f"could not lock instance {target['instance']}: its labels kept changing")


def release_lock(hook: ComputeEngineHook, target: Target, attempts: int = 8) -> bool:
    """Remove our lock label; False when the instance does not carry our lock."""
    for _ in range(attempts):
        instance = hook.find_instance(target["project"], target["zone"], target["instance"])
        if instance is None:
            return False
        lock = parse_lock(instance.labels.get(vmlabels.LOCK))
        if not lock or lock[0] != target["run"]:
            return False
        labels = {k: v for k, v in instance.labels.items() if k != vmlabels.LOCK}
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
    lock = parse_lock(instance.labels.get(vmlabels.LOCK))
    return bool(lock and lock[0] == target["run"])


# -- the three Compute Engine steps --------------------------------------------------------------------------


class StopInstanceOperator(BackupStepOperator):
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
        held = _foreign_lock(instance, t["run"], time.time())
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


class SnapshotDiskOperator(BackupStepOperator):
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

    def snapshot_labels(self, policy: BackupPolicy, t: Target) -> dict[str, str]:
        labels = dict(policy.spec.snapshot.labels)
        labels.update(
            {
                vmlabels.MANAGED_BY: vmlabels.MANAGED_BY_VALUE,
                vmlabels.POLICY_NAMESPACE: policy.namespace,
                vmlabels.POLICY_NAME: policy.name,
                vmlabels.RUN: t["run"],
                vmlabels.INSTANCE: t["instance"],
                vmlabels.CONSISTENCY: vmlabels.consistency_value(policy.spec.consistency),
            }
        )
        return labels

    def run_step(self, context: Any, hook: ComputeEngineHook) -> dict[str, Any]:
        t: Target = self.target
        result: dict[str, Any] = {"instance": t["instance"], "zone": t["zone"], "snapshots": [], "skipped": None}
        if isinstance(self.stop_result, dict) and self.stop_result.get("skipped"):
            return result | {"skipped": self.stop_result["skipped"]}
        policy = BackupPolicy.from_json(self.policy_json)
        labels = self.snapshot_labels(policy, t)
        for disk in t["disks"]:
            ref = hook.create_snapshot(
                t["project"],
                disk["zone"],
                disk["name"],
                disk["snapshot"],
                labels=labels,
                storage_location=policy.spec.snapshot.storage_location,
                guest_flush=policy.spec.consistency == "guestFlush",
                description=f"vmbackup {policy.namespace}/{policy.name} of {t['instance']}/{disk['name']}",
            )
            if ref is None:
                existing = hook.find_snapshot(t["project"], disk["snapshot"])
                if existing is None or existing.labels.get(vmlabels.RUN) != t["run"]:
                    raise AirflowFailException(
                        f"a snapshot named {disk['snapshot']} exists and was not made by this run; "
                        "delete it or rename the disk"
                    )
                log.info("snapshot %s already exists (made by an earlier try of this run)", disk["snapshot"])
            else:
                log.info("Creating snapshot %s of disk %s (%s)", disk["snapshot"], disk["name"], t["instance"])
            result["snapshots"].append({"name": disk["snapshot"], "disk": disk["name"], "operation": ref})
        return result


class StartInstanceOperator(BackupStepOperator):
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


def start_if_ours(hook: ComputeEngineHook, t: Target, stopping_timeout_seconds: float) -> OperationRef | None:
    """Start an instance our run stopped; release the lock when it is already running again."""
    instance = hook.find_instance(t["project"], t["zone"], t["instance"])
    if instance is None or not holds_our_lock(instance, t):
        return None
    deadline = time.monotonic() + stopping_timeout_seconds
    while instance.status in ("STOPPING", "SUSPENDING") and time.monotonic() < deadline:
        time.sleep(1)  # Compute Engine refuses start while the instance is still stopping
        instance = hook.get_instance(t["project"], t["zone"], t["instance"])
    if instance.status == "RUNNING":
        release_lock(hook, t)
        return None
    log.info("Starting instance %s in %s (it was RUNNING before this run)", t["instance"], t["zone"])
    return hook.start_instance(t["project"], t["zone"], t["instance"])
