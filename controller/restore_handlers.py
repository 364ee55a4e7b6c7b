"""VMRestore handling: spec + its policy -> restore DAG in the bucket -> one Airflow run -> status phases.

A restore runs through Airflow like a backup (a one-run DAG using the shared operators and operation sensor),
so the controller's own Google identity needs no Compute Engine rights, and a restore survives controller
restarts: its progress lives in Airflow and in the restore report the DAG writes to the bucket.

Idempotent by name: the one run has a run id derived from the object's uid and is recorded in status.runId
before anything else can trigger it, so neither a resume nor a retry triggers a second run; and the DAG
itself adopts what an earlier run of the same VMRestore created. The policy is read from a kopf index of
VMBackupPolicies (no extra Kubernetes client). Reuses the policy controller's targets, tenancy and buckets.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import kopf

from controller.airflow_api import ACTIVE_RUN_STATES
from controller.airflow_errors import AirflowCallError, AirflowRefusedError, AirflowUnreachableError, DagNotFoundError
from controller.conditions import changed_fields
from controller.status import short
from controller.target_grants import TargetNotAllowedError
from controller.targets import Target, TargetUnavailableError
from vmbackup.model.policy import API_GROUP, API_VERSION, BackupPolicy, InstanceRef, PolicyError, parse_policy
from vmbackup.model.policy import PLURAL as POLICY_PLURAL
from vmbackup.model.report import RestoreReport, restore_report_object_name
from vmbackup.model.restore import (
    PLURAL,
    TERMINAL_PHASES,
    Restore,
    parse_restore,
    restore_dag_id_for,
)

if TYPE_CHECKING:
    from controller.reconciler import Controller

logger = logging.getLogger(__name__)

POLICY_INDEX = "vmrestore_policies"  # kopf passes the index to handlers under this keyword


def run_id_for(uid: str) -> str:
    """The one Airflow run of a VMRestore object; a second trigger with it is refused by Airflow (409)."""
    return f"vmrestore__{uid}"


def policy_index_entry(namespace: str, name: str, body: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (namespace, name): {
            "spec": dict(body.get("spec") or {}),
            "generation": body.get("metadata", {}).get("generation"),
        }
    }


def status_from_report(report: RestoreReport) -> dict[str, Any]:
    """The status fields a restore report fills (absent values are left out)."""
    fields: dict[str, Any] = {
        "phase": report.phase,
        "sourceInstance": report.source_instance,
        "sourceZone": report.source_zone,
        "instance": report.instance,
        "zone": report.zone,
        "snapshotRun": report.snapshot_run,
        "snapshot": report.snapshots[0] if report.snapshots else None,
        "snapshots": report.snapshots or None,
        "createdDisks": report.created_disks if report.phase in TERMINAL_PHASES else None,
        "deletedDisks": report.deleted_disks or None,
        "replacedDisks": report.replaced_disks or None,
        "rolledBack": True if report.rolled_back else None,
        "failedStep": report.failed_step,
        "message": short(report.message) if report.message else None,
    }
    return {k: v for k, v in fields.items() if v is not None}


class RestoreHandlers:
    """The controller's behaviour for VMRestores; `register` wires it into a kopf registry."""

    def __init__(self, controller: Controller):
        self.controller = controller
        self.config = controller.config
        self.tenancy = controller.tenancy
        self.targets = controller.targets

    # ---- create / resume: validate, upload, trigger once ----------------------------------------------

    async def start(self, body: kopf.Body, patch: kopf.Patch, policies: kopf.Index[Any, Any]) -> None:
        namespace, name = str(body.metadata.namespace), str(body.metadata.name)
        status = dict(body.get("status") or {})
        if status.get("phase") in TERMINAL_PHASES or status.get("runId"):
            return  # finished, or triggered before (e.g. by a controller that then restarted): the timer follows it
        spec = dict(body.spec)
        policy_name = str(spec.get("policyName") or "")
        found = next(iter(policies.get((namespace, policy_name), [])), None)
        if found is None:
            self._patch(
                body,
                patch,
                {
                    "phase": "Pending",
                    "message": f"waiting for VMBackupPolicy {policy_name!r} "
                    f"in namespace {namespace}: create it, or fix spec.policyName",
                },
            )
            raise kopf.TemporaryError(f"VMBackupPolicy {namespace}/{policy_name} not found", delay=30)
        try:
            policy = parse_policy(namespace, policy_name, found["spec"])
            restore = parse_restore(namespace, name, spec, policy, int(body.metadata.get("generation") or 0))
        except PolicyError as exc:
            problems = "; ".join(f"{field}: {message}" for field, message in exc.problems)
            self._fail(body, patch, "InvalidSpec", problems)
            return
        refusal = self._refusal(policy, restore)
        if refusal is not None:
            self._fail(body, patch, "TargetNotAllowed", refusal)
            return
        try:
            target = await self.targets.resolve(namespace, policy.spec.composer)
            await self.targets.ensure_plugins(target)
        except TargetNotAllowedError as exc:
            self._fail(body, patch, "TargetNotAllowed", str(exc))
            return
        except TargetUnavailableError as exc:
            self._patch(body, patch, {"phase": "Pending", "message": short(str(exc))})
            raise kopf.TemporaryError(str(exc), delay=self.config.poll_interval_seconds) from exc
        restore = restore.model_copy(update={"wait_mode": await self.controller.wait_mode(target)})
        await self._upload(target, restore)
        run_id = run_id_for(str(body.metadata.uid))
        fields = {
            "dagId": restore.dag_id,
            "observedGeneration": restore.generation,
            "instance": restore.restored_instance,
        }
        try:
            await self._trigger(target, restore.dag_id, run_id)
        except (AirflowUnreachableError, DagNotFoundError) as exc:
            self._patch(body, patch, {**fields, "phase": "Pending", "message": short(f"DAG uploaded; {exc}")})
            raise kopf.TemporaryError(str(exc), delay=min(self.config.poll_interval_seconds, 15)) from exc
        except AirflowRefusedError as exc:
            self._fail(body, patch, "AirflowRefused", str(exc), **fields)
            return
        self._patch(body, patch, {**fields, "runId": run_id, "phase": "Pending", "message": f"run {run_id} triggered"})
        kopf.event(body, type="Normal", reason="RestoreTriggered", message=f"run {run_id} of {restore.dag_id}")

    def _refusal(self, policy: BackupPolicy, restore: Restore) -> str | None:
        """The policy's own tenancy guard, and the target zone too when the new VM goes elsewhere."""
        refusal = self.tenancy.refusal(policy)
        if refusal is not None or restore.spec.target_zone is None:
            return refusal
        placed = policy.spec.model_copy(
            update={
                "instances": [InstanceRef(name=restore.target_name, zone=restore.spec.target_zone)],
                "selector": None,
                "tiers": None,
            }
        )
        return self.tenancy.refusal(policy.model_copy(update={"spec": placed}))

    async def _upload(self, target: Target, restore: Restore) -> None:
        from dags_templates.render_restore import render_restore_dag

        bucket = self.targets.bucket(target)
        try:
            result = await asyncio.to_thread(bucket.upload_dag, restore.dag_id, render_restore_dag(restore))
        except Exception as exc:
            raise kopf.TemporaryError(f"upload to gs://{bucket.name} failed: {exc}", delay=30) from exc
        if result.uploaded:
            logger.info("Uploaded gs://%s/%s", bucket.name, result.object_name)

    async def _trigger(self, target: Target, dag_id: str, run_id: str) -> None:
        """Unpause, then start the one run; a run with this id that already exists counts as triggered."""
        airflow = self.targets.airflow(target)
        await airflow.set_paused(dag_id, False)
        if not await airflow.start_run_once(dag_id, run_id):
            logger.info("run %s of %s exists already", run_id, dag_id)

    # ---- timer: Airflow run + restore report -> status -------------------------------------------------

    async def refresh(self, body: kopf.Body, patch: kopf.Patch, policies: kopf.Index[Any, Any]) -> None:
        status = dict(body.get("status") or {})
        run_id = status.get("runId")
        if not run_id or status.get("phase") in TERMINAL_PHASES:
            return
        namespace, name = str(body.metadata.namespace), str(body.metadata.name)
        target = await self._target_of(namespace, body.spec, policies)
        if target is None:
            return
        report = await asyncio.to_thread(self._read_report, target, namespace, name)
        fields: dict[str, Any] = {}
        if report is not None and report.run_id == run_id:
            fields = status_from_report(report)
        state = await self._run_state(target, restore_dag_id_for(namespace, name), str(run_id))
        if state == "failed" and fields.get("phase") not in TERMINAL_PHASES:
            fields.update(
                phase="Failed",
                message=f"restore run {run_id} failed before reporting; see its task logs in Airflow",
            )
        if not fields:
            return
        phase = fields.get("phase")
        if phase in TERMINAL_PHASES and phase != status.get("phase"):
            kind, reason = ("Normal", "RestoreSucceeded") if phase == "Succeeded" else ("Warning", "RestoreFailed")
            kopf.event(body, type=kind, reason=reason, message=short(str(fields.get("message") or phase)))
        self._patch(body, patch, fields)

    def _read_report(self, target: Target, namespace: str, name: str) -> RestoreReport | None:
        blob = self.targets.bucket(target).bucket.get_blob(restore_report_object_name(namespace, name))
        if blob is None:
            return None
        try:
            return RestoreReport.model_validate(json.loads(blob.download_as_bytes()))
        except ValueError as exc:
            logger.warning("restore report of %s/%s is unreadable: %s", namespace, name, exc)
            return None

    async def _run_state(self, target: Target, dag_id: str, run_id: str) -> str | None:
        try:
            return await self.targets.airflow(target).run_state(dag_id, run_id)
        except AirflowCallError as exc:
            logger.info("cannot read run %s of %s: %s", run_id, dag_id, exc.__cause__ or exc)
            return None

    async def _target_of(
        self, namespace: str, spec: Mapping[str, Any], policies: kopf.Index[Any, Any]
    ) -> Target | None:
        """The policy's granted target (its spec.composer), else the controller's default; None: no usable target."""
        found = next(iter(policies.get((namespace, str(spec.get("policyName") or "")), [])), None)
        composer = None
        if found is not None:
            try:
                composer = parse_policy(namespace, str(spec.get("policyName")), found["spec"]).spec.composer
            except PolicyError:
                composer = None
        try:
            return await self.targets.resolve(namespace, composer)
        except (TargetNotAllowedError, TargetUnavailableError) as exc:
            logger.info("no target for the restore: %s", exc)
            return None

    # ---- deletion: the DAG goes, the restored VM stays ----------------------------------------------------

    async def remove(self, body: kopf.Body, policies: kopf.Index[Any, Any]) -> None:
        namespace, name = str(body.metadata.namespace), str(body.metadata.name)
        target = await self._target_of(namespace, body.spec, policies)
        if target is None:
            return
        status = dict(body.get("status") or {})
        run_id = status.get("runId")
        if run_id and status.get("phase") not in TERMINAL_PHASES:
            # Without its file Airflow could not run the cleanup and report steps of a restore in flight.
            state = await self._run_state(target, restore_dag_id_for(namespace, name), str(run_id))
            if state in ACTIVE_RUN_STATES:
                raise kopf.TemporaryError(
                    f"restore run {run_id} is {state}: its DAG is removed once it ends",
                    delay=self.config.poll_interval_seconds,
                )
        bucket = self.targets.bucket(target)
        try:
            await asyncio.to_thread(bucket.delete_dag, restore_dag_id_for(namespace, name))
        except Exception as exc:
            raise kopf.TemporaryError(
                f"cannot delete the restore DAG from gs://{bucket.name}: {exc}", delay=30
            ) from exc

    # ---- shared -------------------------------------------------------------------------------------------

    def _fail(self, body: kopf.Body, patch: kopf.Patch, reason: str, message: str, **fields: Any) -> None:
        self._patch(body, patch, {**fields, "phase": "Failed", "message": short(message)})
        kopf.event(body, type="Warning", reason=reason, message=short(message))

    @staticmethod
    def _patch(body: kopf.Body, patch: kopf.Patch, fields: Mapping[str, Any]) -> None:
        changed = changed_fields(body.get("status") or {}, {**dict(body.get("status") or {}), **fields})
        if changed:
            patch.status.update(changed)


def register_restore_handlers(registry: kopf.OperatorRegistry, controller: Controller) -> RestoreHandlers:
    """Add the VMRestore handlers (and the policy index they read) to the controller's registry."""
    handlers = RestoreHandlers(controller)
    restores: dict[str, Any] = {"group": API_GROUP, "version": API_VERSION, "plural": PLURAL, "registry": registry}

    @kopf.index(group=API_GROUP, version=API_VERSION, plural=POLICY_PLURAL, registry=registry, id=POLICY_INDEX)
    def vmrestore_policies(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
        return policy_index_entry(str(namespace), name, body)

    @kopf.on.resume(**restores, id="restore")
    @kopf.on.create(**restores, id="restore")
    async def start(body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
        await handlers.start(body, patch, kwargs[POLICY_INDEX])

    @kopf.timer(**restores, interval=controller.config.poll_interval_seconds, id="restore-status")
    async def refresh(body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
        await handlers.refresh(body, patch, kwargs[POLICY_INDEX])

    @kopf.on.delete(**restores, id="remove-restore-dag")
    async def remove(body: kopf.Body, **kwargs: Any) -> None:
        await handlers.remove(body, kwargs[POLICY_INDEX])

    return handlers
