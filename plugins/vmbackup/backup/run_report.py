"""The run's last steps: the safety net that restores VMs, retention pruning, and the run report.

All run with trigger rule all_done: whatever failed before, every VM this run stopped is started again,
and a report is written. The report task fails the run when any step failed, after writing the report.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

import vmbackup.model.labels as vmlabels
from vmbackup.airflow_compat import AirflowException, xcom_values
from vmbackup.backup.operators import ERROR_KEY, STOPPED_STATUSES, BackupStepOperator, release_lock, start_if_ours
from vmbackup.backup.resolution import Resolution, Target
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.model.policy import BackupPolicy
from vmbackup.model.report import (
    DiskResult,
    InstanceResult,
    RunReport,
    StepError,
    latest_report_object_name,
    report_object_name,
)
from vmbackup.model.retention import SnapshotInfo, parse_timestamp, snapshots_to_delete

log = logging.getLogger(__name__)

RESOLVE_TASK = "resolve_instances"
RESTORE_TASK = "restore_instances"
PRUNE_TASK = "prune_snapshots"
REPORT_TASK = "report"
GROUP_STEPS = (
    "stop",
    "wait_stopped",
    "snapshot",
    "wait_snapshots_taken",
    "start",
    "wait_started",
    "wait_snapshots_ready",
)


def _resolution(context: Any) -> Resolution | None:
    value = context["ti"].xcom_pull(task_ids=RESOLVE_TASK)
    return value if isinstance(value, dict) and "groups" in value else None  # type: ignore[return-value]


def _all_targets(resolution: Resolution | None) -> list[Target]:
    if not resolution:
        return []
    return [t for members in resolution["groups"].values() for t in members]


class RestoreInstancesOperator(BackupStepOperator):
    """Safety net: any instance still carrying this run's lock is started (if stopped) and unlocked."""

    def __init__(self, *, start_timeout_seconds: int, stopping_timeout_seconds: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.start_timeout_seconds = start_timeout_seconds
        self.stopping_timeout_seconds = stopping_timeout_seconds

    def run_step(self, context: Any, hook: ComputeEngineHook) -> list[str]:
        restored: list[str] = []
        problems: list[str] = []
        for target in _all_targets(_resolution(context)):
            try:
                ref = start_if_ours(hook, target, self.stopping_timeout_seconds)
                if ref is not None:
                    log.warning("%s was left stopped by a failed step: starting it", target["instance"])
                    hook.wait_done(ref, self.start_timeout_seconds)
                    restored.append(target["instance"])
                release_lock(hook, target)
            except Exception as exc:
                log.exception("could not restore %s", target["instance"])
                problems.append(f"{target['instance']}: {exc}")
        if problems:
            raise AirflowException("could not restore instances: " + "; ".join(problems))
        return restored


class PruneSnapshotsOperator(BackupStepOperator):
    """Deletes this policy's snapshots that retention no longer keeps (per disk; newest READY always kept)."""

    def __init__(self, *, policy_json: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.policy_json = policy_json

    def run_step(self, context: Any, hook: ComputeEngineHook) -> list[str]:
        policy = BackupPolicy.from_json(self.policy_json)
        project = policy.spec.project
        ours = hook.list_snapshots(
            project,
            {
                vmlabels.MANAGED_BY: vmlabels.MANAGED_BY_VALUE,
                vmlabels.POLICY_NAMESPACE: policy.namespace,
                vmlabels.POLICY_NAME: policy.name,
            },
        )
        infos = [
            SnapshotInfo(
                name=s.name,
                disk=_disk_key(s),
                status=s.status,
                created=parse_timestamp(s.creation_timestamp) if s.creation_timestamp else datetime.now(UTC),
            )
            for s in ours
        ]
        doomed = snapshots_to_delete(infos, policy.spec.retention, datetime.now(UTC))
        pruned: list[str] = []
        for snap in doomed:
            log.info(
                "Deleting snapshot %s (disk %s, created %s): outside retention", snap.name, snap.disk, snap.created
            )
            ref = hook.delete_snapshot(project, snap.name)
            if ref is not None:
                hook.wait_done(ref, 600)
            pruned.append(snap.name)
        return pruned


def _disk_key(snapshot: Any) -> str:
    """The source disk of a snapshot, as zones/Z/disks/D (source URLs vary in prefix)."""
    source = snapshot.source_disk or ""
    if "/zones/" in source:
        return "zones/" + source.split("/zones/", 1)[1]
    return source or f"instance:{snapshot.labels.get(vmlabels.INSTANCE, '?')}"


class RunReportOperator(BackupStepOperator):
    """Builds the RunReport from the steps' results and Compute Engine's state; writes it; fails a failed run."""

    def __init__(self, *, policy_json: str, group_ids: dict[str, str], **kwargs: Any):
        super().__init__(**kwargs)
        self.policy_json = policy_json
        self.group_ids = group_ids

    def run_step(self, context: Any, hook: ComputeEngineHook) -> dict[str, Any]:
        report = self.build(context, hook)
        payload = report.model_dump(mode="json", by_alias=True)
        write_report(report)
        if report.result == "failed":
            first = report.errors[0] if report.errors else None
            detail = f"{first.step}: {first.message}" if first else "see the report"
            raise AirflowException(f"backup run failed ({len(report.errors)} error(s)); first: {detail}")
        return payload

    def build(self, context: Any, hook: ComputeEngineHook) -> RunReport:
        policy = BackupPolicy.from_json(self.policy_json)
        ti = context["ti"]
        resolution = _resolution(context)
        errors: list[StepError] = []
        existing = set(self.dag.task_ids)
        for task_id in (t for t in (RESOLVE_TASK, RESTORE_TASK, PRUNE_TASK) if t in existing):
            errors.extend(_step_errors(ti, task_id, [-1]))
        if resolution is None:
            errors.append(StepError(step=RESOLVE_TASK, message="the instances to back up could not be resolved"))
        instances: list[InstanceResult] = []
        for key, members in (resolution["groups"] if resolution else {}).items():
            group = self.group_ids[key]
            indexes = list(range(len(members)))

            def by_instance(step: str, group: str = group, indexes: list[int] = indexes) -> dict[tuple[str, str], Any]:
                return {(v.get("instance"), v.get("zone")): v for v in xcom_values(ti, f"{group}.{step}", indexes)}

            stops, stopped, started, ready = (
                by_instance("stop"),
                by_instance("wait_stopped"),
                by_instance("wait_started"),
                by_instance("wait_snapshots_ready"),
            )
            steps = [s for s in GROUP_STEPS if f"{group}.{s}" in existing]
            group_errors = [e for step in steps for e in _step_errors(ti, f"{group}.{step}", indexes)]
            errors.extend(group_errors)
            for target in members:
                key_ = (target["instance"], target["zone"])
                instances.append(
                    self._instance_result(
                        hook,
                        target,
                        stops.get(key_),
                        stopped.get(key_),
                        started.get(key_),
                        ready.get(key_),
                        group_errors,
                    )
                )
        for item in resolution["errors"] if resolution else []:
            errors.append(StepError(step=RESOLVE_TASK, instance=item["instance"], message=item["reason"]))
            instances.append(InstanceResult(instance=item["instance"], zone=item["zone"], error=item["reason"]))
        for item in resolution["skipped"] if resolution else []:
            instances.append(
                InstanceResult(instance=item["instance"], zone=item["zone"], skipped_reason=item["reason"])
            )
        for inst in instances:
            if inst.error and not any(e.instance == inst.instance for e in errors):
                errors.append(StepError(step=REPORT_TASK, instance=inst.instance, message=inst.error))
        pruned = ti.xcom_pull(task_ids=PRUNE_TASK) or []
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
        )

    def _instance_result(
        self,
        hook: ComputeEngineHook,
        target: Target,
        stop: dict[str, Any] | None,
        stopped: dict[str, Any] | None,
        started: dict[str, Any] | None,
        ready: dict[str, Any] | None,
        group_errors: list[StepError],
    ) -> InstanceResult:
        skipped = (stop or {}).get("skipped")
        prior = (stop or {}).get("prior_status") or target["status"]
        now = hook.find_instance(target["project"], target["zone"], target["instance"])
        final = now.status if now is not None else "MISSING"
        states = (ready or {}).get("states") or {}
        disks = []
        for disk in target["disks"]:
            state = "SKIPPED"
            error = None
            if not skipped:
                snap = hook.find_snapshot(target["project"], disk["snapshot"])
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
                )
            )
            states.pop(disk["snapshot"], None)
        disks.extend(
            DiskResult(disk=d["name"], zone=d["location"], state="SKIPPED", error=d["reason"])
            for d in target.get("unsupported_disks", [])
        )
        stopped_at = _time((stopped or {}).get("start_time")) or _time((stop or {}).get("requested_at"))
        started_at = _time((started or {}).get("end_time")) or _time((started or {}).get("observed_at"))
        downtime = (started_at - stopped_at).total_seconds() if stopped_at and started_at else None
        problems = [e.message for e in group_errors if e.instance == target["instance"]]
        if _normal(final) != _normal(prior):
            problems.append(f"instance is {final} after the run but was {prior} before it")
        problems.extend(f"{d.disk}: {d.error}" for d in disks if d.error)
        return InstanceResult(
            instance=target["instance"],
            zone=target["zone"],
            tier=target["tier"],
            prior_status=prior,
            final_status=final,
            stopped_at=stopped_at if (stop or {}).get("operation") else None,
            started_at=started_at if (stop or {}).get("operation") else None,
            downtime_seconds=downtime if (stop or {}).get("operation") else None,
            disks=disks,
            skipped_reason=skipped,
            error="; ".join(problems) or None,
        )


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
        for e in xcom_values(ti, task_id, map_indexes, key=ERROR_KEY)
    ]


def write_report(report: RunReport) -> None:
    """Write the report to the Composer bucket (this run's object and latest.json); skip without GCS_BUCKET."""
    bucket_name = os.environ.get("GCS_BUCKET")
    if not bucket_name:
        log.warning("GCS_BUCKET is not set: the run report is not uploaded (it is still the task's return value)")
        return
    from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]

    text = json.dumps(report.model_dump(mode="json", by_alias=True), indent=2, sort_keys=True)
    bucket = storage.Client().bucket(bucket_name)
    for name in (
        report_object_name(report.namespace, report.name, report.run_id),
        latest_report_object_name(report.namespace, report.name),
    ):
        bucket.blob(name).upload_from_string(text, content_type="application/json")
        log.info("run report written to gs://%s/%s", bucket_name, name)
