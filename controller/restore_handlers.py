"""VMRestore handling: spec + its policy -> one signed run of the shared restore DAG -> status phases.

A restore runs through Airflow like a backup (using the shared operators and operation sensor), so the
controller's own Google identity needs no Compute Engine rights, and a restore survives controller restarts: its
progress lives in Airflow and in the restore report the run writes to the bucket. It starts without a DAG file of
its own: the run of the shared restore DAG (shipped with the plugins) gets the validated restore as its conf,
signed with the key the Airflow workers check (vmbackup.model.run_signature). Restores an earlier version started
keep their own DAG file until their run ends. While a restore waits, its status says for what
(controller/restore_progress.py).

Idempotent by name: the one run has a run id derived from the object's uid (Airflow answers 409 to a second
trigger with it, which counts as started), recorded in status.runId, so neither a resume nor a retry triggers a
second run; and the run itself adopts what an earlier run of the same VMRestore created. The policy is read from a kopf index of
VMBackupPolicies (no extra Kubernetes client). Reuses the policy controller's targets, tenancy and buckets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

import kopf

from controller.airflow_api import ACTIVE_RUN_STATES
from controller.airflow_errors import AirflowCallError, AirflowRefusedError, AirflowUnreachableError, DagNotFoundError
from controller.bucket import DAGS_PREFIX, dag_object_name
from controller.conditions import changed_fields
from controller.restore_progress import (
    AIRFLOW_UNREACHABLE,
    DAG_IMPORT_ERROR,
    DAG_NOT_IN_AIRFLOW,
    POLICY_NOT_FOUND,
    RUN_QUEUED,
    RUN_REFUSED,
    SIGNING_KEY_MISSING,
    TARGET_UNAVAILABLE,
    Waiting,
    not_started,
    progress_status,
    run_started,
    waiting_in_run,
)
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
    shared_restore_dag_id,
)
from vmbackup.model.run_signature import SIGNING_KEY_ENV, sign_run_conf

if TYPE_CHECKING:
    from controller.reconciler import Controller

logger = logging.getLogger(__name__)

POLICY_INDEX = "vmrestore_policies"  # kopf passes the index to handlers under this keyword
SIGNING_SETUP = (
    "set the same key in the controller's Secret and the Airflow environment (docs/operations/restore-signing.md)"
)


def run_id_for(uid: str) -> str:
    """The one Airflow run of a VMRestore object; a second trigger with it is refused by Airflow (409)."""
    return f"vmrestore__{uid}"


def run_dag_id(status: Mapping[str, Any], namespace: str, name: str) -> str:
    """The DAG the restore's run is in: a shared restore DAG, or (started by an earlier version) its own."""
    return str(status.get("dagId") or restore_dag_id_for(namespace, name))


def status_of(body: kopf.Body) -> dict[str, Any]:
    return dict(body.get("status") or {})


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

    # ---- create / resume: validate, sign, trigger once ---------------------------------------------------

    async def start(self, body: kopf.Body, patch: kopf.Patch, policies: kopf.Index[Any, Any]) -> None:
        namespace, name = str(body.metadata.namespace), str(body.metadata.name)
        status = dict(body.get("status") or {})
        if status.get("phase") in TERMINAL_PHASES or status.get("runId"):
            return  # finished, or triggered before (e.g. by a controller that then restarted): the timer follows it
        spec = dict(body.spec)
        policy_name = str(spec.get("policyName") or "")
        found = next(iter(policies.get((namespace, policy_name), [])), None)
        if found is None:
            why = f"VMBackupPolicy {policy_name!r} in namespace {namespace}: create it, or fix spec.policyName"
            self._cannot_start(body, patch, {}, POLICY_NOT_FOUND, why, delay=30)
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
            why = f"the Composer environment to be usable: {exc}"
            self._cannot_start(body, patch, {}, TARGET_UNAVAILABLE, why, delay=self._retry_delay)
        restore = restore.model_copy(update={"wait_mode": await self.controller.wait_mode(target)})
        await self._start_run(body, patch, target, restore)

    @property
    def _retry_delay(self) -> float:
        """How soon a restore that cannot start looks again (it says why meanwhile)."""
        return min(self.config.poll_interval_seconds, 15)

    async def _start_run(self, body: kopf.Body, patch: kopf.Patch, target: Target, restore: Restore) -> None:
        """Trigger the restore's one run of the shared DAG, its conf signed; say why when it cannot start."""
        dag_id, run_id = shared_restore_dag_id(restore.in_place), run_id_for(str(body.metadata.uid))
        fields = {"dagId": dag_id, "observedGeneration": restore.generation, "instance": restore.restored_instance}
        key = self.config.run_signing_key
        if key is None:
            why = f"the controller's {SIGNING_KEY_ENV}, to sign the restore run with (it is not set): {SIGNING_SETUP}"
            self._cannot_start(body, patch, fields, SIGNING_KEY_MISSING, why, delay=60)
        expires_at = int(time.time() + self.config.run_signature_ttl_seconds)
        conf = sign_run_conf(
            key.encode(), dag_id=dag_id, run_id=run_id, payload=restore.to_json(), expires_at=expires_at
        )
        airflow = self.targets.airflow(target)
        try:
            await airflow.set_paused(dag_id, False)
            if not await airflow.start_run_once(dag_id, run_id, conf):
                logger.info("run %s of %s exists already", run_id, dag_id)
        except AirflowUnreachableError as exc:
            why = f"Airflow to answer ({exc}); trying again every {self._retry_delay:g}s"
            self._cannot_start(body, patch, fields, AIRFLOW_UNREACHABLE, why, delay=self._retry_delay)
        except DagNotFoundError:
            reason, why = await self._dag_missing(target, dag_id)
            self._cannot_start(body, patch, fields, reason, why, delay=self._retry_delay)
        except AirflowRefusedError as exc:
            self._fail(body, patch, RUN_REFUSED, f"Airflow refused to start the restore run: {exc}", **fields)
            return
        waiting = Waiting(RUN_QUEUED, f"Airflow's scheduler to start run {run_id}")
        progress = progress_status(status_of(body), waiting, run_started(run_id), **self._when(body))
        self._patch(
            body,
            patch,
            {
                **fields,
                **progress,
                "runId": run_id,
                "phase": "Pending",
                "message": f"run {run_id} of {dag_id} triggered",
            },
        )
        kopf.event(body, type="Normal", reason="RestoreTriggered", message=f"run {run_id} of {dag_id}")

    async def _dag_missing(self, target: Target, dag_id: str) -> tuple[str, str]:
        """Why Airflow does not know the shared restore DAG: its file does not import, or has not reached it yet."""
        from dags_templates.render_restore import SHARED_DAG_FILE_ID

        file_name = dag_object_name(SHARED_DAG_FILE_ID).removeprefix(DAGS_PREFIX)
        try:
            broken = await self.targets.airflow(target).import_error(file_name)
        except AirflowCallError:
            broken = None
        if broken:
            return DAG_IMPORT_ERROR, f"a restore DAG Airflow can import: {file_name} fails with {broken}"
        where = f"gs://{target.bucket}/{dag_object_name(SHARED_DAG_FILE_ID)}"
        return DAG_NOT_IN_AIRFLOW, (
            f"the restore DAG {dag_id} to reach Airflow: it is in {where}, and Composer copies it to Airflow and "
            "lists it within minutes, once; later restores start at once"
        )

    def _cannot_start(
        self, body: kopf.Body, patch: kopf.Patch, fields: Mapping[str, Any], reason: str, why: str, *, delay: float
    ) -> NoReturn:
        """Pending, waiting for `why` (status message, waitingFor, Waiting and RunStarted); kopf tries again after
        `delay`."""
        waiting, started = not_started(reason, short(why))
        progress = progress_status(status_of(body), waiting, started, **self._when(body))
        self._patch(body, patch, {**fields, **progress, "phase": "Pending", "message": short(f"waiting for {why}")})
        raise kopf.TemporaryError(why, delay=delay)

    @staticmethod
    def _when(body: kopf.Body) -> dict[str, Any]:
        return {"generation": int(body.metadata.get("generation") or 0), "now": datetime.now(UTC)}

    def _refusal(self, policy: BackupPolicy, restore: Restore) -> str | None:
        """The policy's own tenancy guard, and the target project and zone too when the new VM goes elsewhere: a
        namespace restores only into projects (and zones) the tenancy map grants it, as a policy backs up only there."""
        refusal = self.tenancy.refusal(policy)
        if refusal is not None or (restore.spec.target_zone is None and restore.spec.target_project is None):
            return refusal
        zone = restore.spec.target_zone or restore.zone
        placed = policy.spec.model_copy(
            update={
                "project": restore.target_project,
                "instances": [InstanceRef(name=restore.target_name, zone=zone)] if zone else [],
                "selector": None,
                "tiers": None,
            }
        )
        refused = self.tenancy.refusal(policy.model_copy(update={"spec": placed}))
        return refused and refused.replace("spec.project", "spec.targetProject")

    # ---- timer: Airflow run + restore report -> status -------------------------------------------------

    async def refresh(self, body: kopf.Body, patch: kopf.Patch, policies: kopf.Index[Any, Any]) -> None:
        status = status_of(body)
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
        waiting, state = await self._waiting_for(target, run_dag_id(status, namespace, name), str(run_id))
        if state == "failed" and fields.get("phase") not in TERMINAL_PHASES:
            fields.update(
                phase="Failed",
                message=f"restore run {run_id} failed before reporting; see its first failed task's log in Airflow "
                f"(a run the workers refused says why there, e.g. a {SIGNING_KEY_ENV} that differs from the "
                "controller's)",
            )
        phase = fields.get("phase") or status.get("phase")
        fields.update(progress_status(status, None if phase in TERMINAL_PHASES else waiting, None, **self._when(body)))
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

    async def _waiting_for(self, target: Target, dag_id: str, run_id: str) -> tuple[Waiting | None, str | None]:
        """What the run waits for now, and its state (None: Airflow did not answer)."""
        airflow = self.targets.airflow(target)
        try:
            state = await airflow.run_state(dag_id, run_id)
            tasks = await airflow.run_tasks(dag_id, run_id) if state == "running" else []
        except AirflowCallError as exc:
            why = f"Airflow to answer (cannot read run {run_id} of {dag_id}: {exc})"
            return Waiting(AIRFLOW_UNREACHABLE, short(why)), None
        return waiting_in_run(run_id, state, tasks), state

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
        status = status_of(body)
        run_id = status.get("runId")
        legacy = run_dag_id(status, namespace, name) == restore_dag_id_for(namespace, name)
        if run_id and legacy and status.get("phase") not in TERMINAL_PHASES:
            # A restore an earlier version started runs in a DAG file of its own: without the file Airflow could
            # not run the cleanup and report steps of a restore in flight.
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
        _, started = not_started(reason, short(message))
        progress = progress_status(status_of(body), None, started, **self._when(body))
        self._patch(body, patch, {**fields, **progress, "phase": "Failed", "message": short(message)})
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
