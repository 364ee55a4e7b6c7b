"""Operators of the restore workflow: plan, create disks from snapshots, create the VM, clean up, report.

Like the backup operators, each step starts Compute Engine work (through the hook) and returns the operation for
the shared OperationStatusSensor to wait on. Everything a restore creates carries the label
`vmbackup-restore=<marker>` and has a deterministic name, so a retried task (or a second run of the same
VMRestore) adopts what an earlier try created instead of creating it twice. Nothing here ever writes to the
source VM or to a snapshot: they are only read.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from vmbackup.airflow_compat import AirflowException, AirflowFailException
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.compute.step_operator import ComputeStepOperator, recorded_errors
from vmbackup.model import labels as vmlabels
from vmbackup.model.report import RestoreReport, restore_report_object_name
from vmbackup.model.restore import Restore
from vmbackup.report_upload import upload_report
from vmbackup.restore import steps
from vmbackup.restore.execute import start_disk, start_instance, wait_disk_ready
from vmbackup.restore.in_place import plan_in_place
from vmbackup.restore.plan import (
    PlannedDisk,
    RestorePlan,
    RestoreProblemError,
    is_ours,
    plan_restore,
)
from vmbackup.restore.run_conf import signed_restore_json
from vmbackup.vm.marked import restart_source_if_marked

log = logging.getLogger(__name__)


def write_restore_report(report: RestoreReport) -> None:
    """The controller reads phase and results from here."""
    upload_report(
        report, [restore_report_object_name(report.namespace, report.name)], f"restore report ({report.phase})"
    )


def _report(restore: Restore, context: Any, plan: RestorePlan | None, phase: str, **fields: Any) -> RestoreReport:
    return RestoreReport(
        namespace=restore.namespace,
        name=restore.name,
        dag_id=context["ti"].dag_id,  # the restore's own DAG (earlier versions) or a shared restore DAG
        run_id=context["run_id"],
        phase=phase,
        source_instance=restore.instance,
        source_zone=plan["source_zone"] if plan else restore.zone,
        instance=plan["target"] if plan else restore.restored_instance,
        zone=plan["zone"] if plan else (restore.spec.target_zone or restore.zone),
        mode=restore.spec.mode,
        snapshot_run=plan["run"] if plan else None,
        snapshots=plan["snapshots"] if plan else [],
        updated_at=datetime.now(UTC),
        **fields,
    )


class RestoreStepOperator(ComputeStepOperator):
    """A restore step: a RestoreProblemError (bad spec, taken name, snapshot not READY) fails at once, unretried.

    `restore_json` None (the shared restore DAGs): the restore is the run's signed conf, verified before the step
    builds a Compute Engine client; a conf the controller did not sign fails the task with nothing touched.
    """

    ui_color = "#e6f4ea"

    def __init__(self, *, restore_json: str | None, **kwargs: Any):
        super().__init__(**kwargs)
        self.restore_json = restore_json

    @cached_property
    def restore(self) -> Restore:
        """The VMRestore, parsed once per task instance (``restore_json`` is no template field)."""
        if self.restore_json is None:
            raise AirflowFailException(f"{self.task_id}: the restore is read from the run's conf in execute()")
        return Restore.from_json(self.restore_json)

    def execute(self, context: Any) -> Any:
        if self.restore_json is None:
            self.restore_json = signed_restore_json(context)
        return super().execute(context)

    def run_step(self, context: Any, hook: ComputeEngineHook) -> Any:
        try:
            return self.restore_step(context, hook)
        except RestoreProblemError as exc:
            raise AirflowFailException(str(exc)) from None

    def restore_step(self, context: Any, hook: ComputeEngineHook) -> Any:
        raise NotImplementedError


class PlanRestoreOperator(RestoreStepOperator):
    """Chooses the snapshots, reads the source VM's config and checks the target names are free (or ours)."""

    def restore_step(self, context: Any, hook: ComputeEngineHook) -> RestorePlan:
        restore = self.restore
        plan = plan_in_place(restore, hook, context["run_id"]) if restore.in_place else plan_restore(restore, hook)
        if not restore.in_place and plan["source_exists"]:  # (an InPlace plan starts it itself, before anything)
            restart_source_if_marked(
                hook, plan.get("source_project", plan["project"]), plan["source_zone"], plan["source_instance"]
            )
        phase = "CreatingInstance" if plan["done"] else "CreatingDisks"
        write_restore_report(_report(restore, context, plan, phase))
        return plan


class CreateRestoreDiskOperator(RestoreStepOperator):
    """Creates one disk from its snapshot, or adopts it when an earlier try of this restore created it."""

    template_fields = ("target",)

    def restore_step(self, context: Any, hook: ComputeEngineHook) -> dict[str, Any]:
        disk: PlannedDisk = self.target
        result: dict[str, Any] = {"instance": disk["instance"], "zone": disk["zone"], "disk": disk["name"]}
        ref = start_disk(hook, disk)
        if ref is None:  # adopted: it may still be CREATING (its insert operation was lost with an earlier try)
            wait_disk_ready(hook, disk, self.restore.spec.timeouts.disks_seconds)
        return result | {"operation": ref, "adopted": ref is None}


class CreateRestoredInstanceOperator(RestoreStepOperator):
    """Creates the new VM with the restored disks attached (or adopts it: the label says it is this restore's)."""

    template_fields = ("plan",)

    def __init__(self, *, plan: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.plan = plan

    def restore_step(self, context: Any, hook: ComputeEngineHook) -> dict[str, Any]:
        plan: RestorePlan = self.plan
        result: dict[str, Any] = {"instance": plan["target"], "zone": plan["zone"], "operation": None}
        write_restore_report(_report(self.restore, context, plan, "CreatingInstance"))
        if plan["done"]:
            return result
        return result | {"operation": start_instance(hook, plan)}


def _plan(context: Any) -> RestorePlan | None:
    value = context["ti"].xcom_pull(task_ids=steps.PLAN)
    return value if isinstance(value, dict) and "disks" in value else None  # type: ignore[return-value]


def _restored(hook: ComputeEngineHook, plan: RestorePlan) -> Any:
    """The restored instance, when it exists and is this restore's."""
    instance = hook.find_instance(plan["project"], plan["zone"], plan["target"])
    return instance if instance is not None and is_ours(instance.labels, plan["marker"]) else None


def _settled(context: Any) -> dict[str, Any]:
    """What the settle step of an InPlace restore did (empty for a new-VM restore)."""
    value = context["ti"].xcom_pull(task_ids=steps.SETTLE)
    return value if isinstance(value, dict) else {}


class CleanupRestoreDisksOperator(RestoreStepOperator):
    """After a failure: deletes the disks this restore created that no instance uses (unless asked to keep them).

    Runs with trigger rule all_done, after every disk and instance step has finished. Only disks named in the
    plan AND carrying this restore's label are deleted: never a source disk, never a snapshot.
    """

    def __init__(self, *, disk_timeout_seconds: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.disk_timeout_seconds = disk_timeout_seconds  # None: the restore's spec.timeouts.disksSeconds

    def restore_step(self, context: Any, hook: ComputeEngineHook) -> list[str]:
        plan = _plan(context)
        if plan is None or _restored(hook, plan) is not None or _settled(context).get("restored"):
            return []
        if self.restore.spec.keep_disks_on_failure:
            log.warning("the restore failed; its disks are kept (spec.keepDisksOnFailure)")
            return []
        deleted: list[str] = []
        for disk in plan["disks"]:
            found = hook.find_disk(plan["project"], plan["zone"], disk["name"])
            if found is None or not is_ours(found.labels, plan["marker"]):
                continue
            if found.users:
                log.warning("disk %s is attached to %s: kept", disk["name"], ", ".join(found.users))
                continue
            log.info("Deleting disk %s: the restore failed", disk["name"])
            ref = hook.delete_disk(plan["project"], plan["zone"], disk["name"])
            if ref is not None:
                hook.wait_done(ref, self.disk_timeout_seconds or self.restore.spec.timeouts.disks_seconds)
            deleted.append(disk["name"])
        return deleted


class RestoreReportOperator(RestoreStepOperator):
    """The final report (Succeeded or Failed, with each failed step's message); fails a failed run after writing."""

    def restore_step(self, context: Any, hook: ComputeEngineHook) -> dict[str, Any]:
        restore = self.restore
        ti = context["ti"]
        plan = _plan(context)
        errors = _step_errors(ti, plan)
        deleted = list(ti.xcom_pull(task_ids=steps.CLEANUP) or [])
        created: list[str] = []
        instance = None
        if plan is not None:
            instance = _restored(hook, plan)
            created = _created_disks_left(hook, plan, deleted)
        settled = _settled(context)
        done = bool(settled.get("restored")) if restore.in_place else instance is not None
        succeeded = not errors and done
        failed_step = None
        replaced = list(settled.get("replaced") or [])
        if succeeded:
            message = _success_message(restore, plan, settled, replaced)
        else:
            first = errors[0] if errors else None
            failed_step = first["step"] if first else None
            message = _failure_message(restore, first, settled, deleted, created)
        report = _report(
            restore,
            context,
            plan,
            "Succeeded" if succeeded else "Failed",
            created_disks=created,
            deleted_disks=deleted,
            message=message,
            failed_step=failed_step,
            replaced_disks=replaced,
            rolled_back=bool(settled.get("rolled_back")),
        )
        write_restore_report(report)
        if not succeeded:
            raise AirflowException(f"restore failed: {failed_step or 'report'}: {message}")
        return report.model_dump(mode="json", by_alias=True)


def _step_errors(ti: Any, plan: RestorePlan | None) -> list[dict[str, Any]]:
    """The errors the restore's steps recorded, in step order."""
    errors: list[dict[str, Any]] = []
    singles = (
        steps.PLAN,
        steps.CREATE_INSTANCE,
        steps.WAIT_INSTANCE,
        steps.REPLACE_DISKS,
        steps.SETTLE,
        steps.CLEANUP,
    )
    for task_id in singles:
        errors.extend(recorded_errors(ti, task_id, [-1]))
    indexes = list(range(len(plan["disks"]))) if plan else []
    for task_id in (steps.CREATE_DISK_ID, steps.WAIT_DISK_ID):
        errors.extend(recorded_errors(ti, task_id, indexes))
    return errors


def _created_disks_left(hook: ComputeEngineHook, plan: RestorePlan, deleted: list[str]) -> list[str]:
    """The planned disks this restore created that the cleanup did not delete."""
    return [
        d["name"]
        for d in plan["disks"]
        if d["name"] not in deleted
        and (found := hook.find_disk(plan["project"], plan["zone"], d["name"]))
        and is_ours(found.labels, plan["marker"])
    ]


def _success_message(restore: Restore, plan: RestorePlan | None, settled: dict[str, Any], replaced: list[str]) -> str:
    if restore.in_place:
        gone = sorted(settled.get("deleted_replaced") or [])
        return f"instance {restore.instance} restored in place from run {plan['run'] if plan else '?'}; " + (
            f"replaced disks deleted: {', '.join(gone)}"
            if gone
            else f"replaced disks kept, labelled {vmlabels.REPLACED_BY}={restore.marker}: {', '.join(sorted(replaced))}"
        )
    return f"instance {restore.target_name} restored in {plan['zone'] if plan else '?'} from run " + str(
        plan["run"] if plan else "?"
    )


def _failure_message(
    restore: Restore,
    first: dict[str, Any] | None,
    settled: dict[str, Any],
    deleted: list[str],
    created: list[str],
) -> str:
    message: str = first["message"] if first else "the restore did not create the instance"
    if settled.get("rolled_back"):
        message += (
            f"; {restore.instance} was put back as it was (its original disks attached again, started "
            "again if it was running)"
        )
    if deleted:
        message += f" (created disks deleted: {', '.join(deleted)})"
    elif created and restore.spec.keep_disks_on_failure:
        message += f" (created disks kept: {', '.join(created)})"
    return message
