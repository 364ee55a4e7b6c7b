"""The run's report: what happened to each VM and disk, built from the steps' results and Compute Engine's state.

Runs last with trigger rule all_done: a report is written whatever failed before, and the task then fails
the run when any step failed.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from vmbackup.airflow_compat import AirflowException, xcom_values
from vmbackup.backup import preflight, steps
from vmbackup.backup.resolution import Target, pulled_resolution
from vmbackup.backup.window_records import GroupRecords, came_up, group_records
from vmbackup.compute.hook import STOPPED_STATUSES, ComputeEngineHook
from vmbackup.compute.step_operator import ComputeStepOperator, recorded_errors
from vmbackup.model.identifiers import instant_snapshot_name, read_lock
from vmbackup.model.report import (
    DiskResult,
    InstanceResult,
    RunReport,
    StepError,
    latest_report_object_name,
    report_object_name,
)
from vmbackup.model.retention import parse_timestamp
from vmbackup.policy_task import PolicyTask
from vmbackup.report_upload import upload_report

log = logging.getLogger(__name__)


class RunReportOperator(PolicyTask, ComputeStepOperator):
    """Builds the RunReport from the steps' results and Compute Engine's state; writes it; fails a failed run."""

    def __init__(self, *, policy_json: str, group_ids: dict[str, str], **kwargs: Any):
        super().__init__(**kwargs)
        self.policy_json = policy_json
        self.group_ids = group_ids

    def run_step(self, context: Any, hook: ComputeEngineHook) -> dict[str, Any]:
        report = self.build(context, hook)
        payload = report.model_dump(mode="json", by_alias=True)
        upload_report(
            report,
            [
                report_object_name(report.namespace, report.name, report.run_id),
                latest_report_object_name(report.namespace, report.name),
            ],
            "run report",
        )
        if report.result == "failed":
            first = report.errors[0] if report.errors else None
            detail = f"{first.step}: {first.message}" if first else "see the report"
            raise AirflowException(f"backup run failed ({len(report.errors)} error(s)); first: {detail}")
        return payload

    def build(self, context: Any, hook: ComputeEngineHook) -> RunReport:
        policy = self.policy
        ti = context["ti"]
        resolution = pulled_resolution(context)
        errors: list[StepError] = []
        existing = set(self.dag.task_ids)
        for task_id in (t for t in (steps.RESOLVE, steps.RESTART_STOPPED, steps.PRUNE) if t in existing):
            errors.extend(_step_errors(ti, task_id, [-1]))
        if resolution is None:
            errors.append(StepError(step=steps.RESOLVE, message="the instances to back up could not be resolved"))
        instances: list[InstanceResult] = []
        for key, members in (resolution["groups"] if resolution else {}).items():
            assert resolution is not None
            records = group_records(ti, existing, resolution, key, self.group_ids[key])
            kept = {
                name
                for done in xcom_values(ti, steps.in_group(records.group, steps.DELETE_INSTANT), records.indexes)
                for name in (done or {}).get("kept") or []
            }
            group_errors = [e for task_id in records.windows for e in _step_errors(ti, task_id, records.indexes)]
            group_errors += [
                StepError(step=task_id, instance=vm["instance"], message=f"{vm.get('error_step')}: {vm['error']}")
                for task_id, by_vm in records.windows.items()
                for vm in by_vm.values()
                if vm.get("error")
            ]
            errors.extend(group_errors)
            for target in members:
                instances.append(
                    self._instance_result(hook, target, records, kept, group_errors, policy.spec.snapshot_project)
                )
        for item in resolution["errors"] if resolution else []:
            errors.append(StepError(step=steps.RESOLVE, instance=item["instance"], message=item["reason"]))
            instances.append(InstanceResult(instance=item["instance"], zone=item["zone"], error=item["reason"]))
        for item in resolution["skipped"] if resolution else []:
            instances.append(
                InstanceResult(instance=item["instance"], zone=item["zone"], skipped_reason=item["reason"])
            )
        preflight.note_guest_flush_failures(policy.spec.consistency, instances)
        for inst in instances:
            if inst.error and not any(e.instance == inst.instance for e in errors):
                errors.append(StepError(step=steps.REPORT, instance=inst.instance, message=inst.error))
        pruned = ti.xcom_pull(task_ids=steps.PRUNE) or []
        dag_run = context.get("dag_run")
        return RunReport(
            namespace=policy.namespace,
            name=policy.name,
            dag_id=policy.dag_id,
            run_id=context["run_id"],
            consistency=policy.spec.consistency,
            result="failed" if errors else "succeeded",
            started_at=getattr(dag_run, "start_date", None),
            finished_at=datetime.now(UTC),
            instances=instances,
            pruned_snapshots=list(pruned),
            errors=errors,
            slot=resolution.get("slot") if resolution else None,
            missed=resolution.get("missed") if resolution else None,
        )

    def _instance_result(
        self,
        hook: ComputeEngineHook,
        target: Target,
        records: GroupRecords,
        kept: set[str],
        group_errors: list[StepError],
        snapshot_project: str,
    ) -> InstanceResult:
        """One VM's outcome from its group's records; a snapshot the READY wait saw READY is not read again."""
        down, up = records.down(target), records.up(target)
        skipped = (down or {}).get("skipped")
        prior = (down or {}).get("prior_status") or target["status"]
        if not skipped and came_up(up):  # the window's DONE start (or no stop of ours) says it: not read again
            now, final = None, str(prior)
        else:
            now = hook.find_instance(target["project"], target["zone"], target["instance"])
            final = now.status if now is not None else "MISSING"
        disks = _disk_results(hook, target, records, down, kept, skipped=bool(skipped), project=snapshot_project)
        stopped_by_us = bool((down or {}).get("stopped"))
        requested = (down or {}).get("stop_requested_at")
        stopped_at = _time((down or {}).get("stopped_at")) or (
            datetime.fromtimestamp(float(requested), UTC) if requested else None
        )
        started_at = _time((up or {}).get("started_at"))
        downtime = (started_at - stopped_at).total_seconds() if stopped_at and started_at else None
        problems = [e.message for e in group_errors if e.instance == target["instance"]]
        note = None
        if skipped:  # this run never touched it: what another run does with it meanwhile is no failure of ours
            pass
        elif _normal(final) != _normal(prior):
            other = _other_run(now, target)
            if other and started_at is not None:  # this run gave it back; another run has taken it since
                note = (
                    f"this run returned it to {prior} at {started_at.isoformat()}; it is {final} now: held by {other}"
                )
            else:
                problems.append(f"instance is {final} after the run but was {prior} before it")
        problems.extend(f"{d.disk}: {d.error}" for d in disks if d.error)
        return InstanceResult(
            instance=target["instance"],
            zone=target["zone"],
            tier=target["tier"],
            prior_status=prior,
            final_status=final,
            stopped_at=stopped_at if stopped_by_us else None,
            started_at=started_at if stopped_by_us else None,
            downtime_seconds=downtime if stopped_by_us else None,
            disks=disks,
            skipped_reason=skipped,
            note=note,
            error="; ".join(problems) or None,
        )


def _disk_results(
    hook: ComputeEngineHook,
    target: Target,
    records: GroupRecords,
    down: dict[str, Any] | None,
    kept: set[str],
    *,
    skipped: bool,
    project: str,
) -> list[DiskResult]:
    """Each disk's snapshot as the run left it (read in the policy's snapshot `project`); a snapshot the READY wait
    saw READY is not read again."""
    cut_of = {item["disk"]: item for item in (down or {}).get("snapshots") or []}
    disks = []
    for disk in target["disks"]:
        state = "SKIPPED"
        error = None
        if not skipped and records.ready_states.get(disk["snapshot"]) == "READY":
            state = "READY"
        elif not skipped:
            snap = hook.find_snapshot(project, disk["snapshot"])
            if snap is None:
                state, error = "FAILED", "snapshot was not created"
            else:
                state = snap.status if snap.status in ("READY", "UPLOADING", "CREATING", "FAILED") else "FAILED"
                if state != "READY":
                    error = f"snapshot is {snap.status}"
        disks.append(
            DiskResult(
                disk=disk["name"],
                zone=disk["zone"],
                snapshot=None if skipped else disk["snapshot"],
                state=state,
                error=error,
                method=cut_of.get(disk["name"], {}).get("kind"),
                note=cut_of.get(disk["name"], {}).get("fallback") or _kept_note(disk["snapshot"], kept),
            )
        )
    return disks


def _kept_note(snapshot: str, kept: set[str]) -> str | None:
    """Why the disk's instant snapshot is still there, when the delete step had to keep it."""
    name = instant_snapshot_name(snapshot)
    if name not in kept:
        return None
    return f"instant snapshot {name} was kept (a snapshot was still being made from it); a later run's prune deletes it"


def _other_run(instance: Any, target: Target) -> str | None:
    """Who else (policy or restore, and run) holds the instance's lock now, if anyone."""
    lock = read_lock(instance.labels) if instance is not None else None
    return lock.holder() if lock and lock.run != target["run"] else None


def _normal(status: str | None) -> str | None:
    return "TERMINATED" if status in STOPPED_STATUSES else status


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return parse_timestamp(str(value))
    except ValueError:
        return None


def _step_errors(ti: Any, task_id: str, map_indexes: list[int]) -> list[StepError]:
    return [
        StepError(step=e["step"], instance=e.get("instance"), disk=e.get("disk"), message=e["message"])
        for e in recorded_errors(ti, task_id, map_indexes)
    ]
