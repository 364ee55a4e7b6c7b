"""Steps of a restore drill: plan -> boot the throwaway VM -> guest check -> tear down (always) -> report.

Planning, disk and instance creation are the restore workflow's own functions (restore_operators); what is
drill-only is here: the boot timing, the serial port check, the teardown that deletes everything labelled with
the policy's drill marker (also what an earlier, interrupted drill left), and the drill report.

Each step reads its policy through vmbackup.policy_task: in the shared drill DAG from the run's signed conf
(``policy_source``), checked before the step builds a Compute Engine client, so a run the controller did not start
fails every step, the teardown included, with nothing read or deleted.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from typing import Any

from vmbackup.airflow_compat import AirflowFailException
from vmbackup.compute.hook import ComputeEngineHook, OperationRef, operation_error
from vmbackup.compute.sensors import _RecordingSensor
from vmbackup.compute.step_operator import ComputeStepOperator, recorded_errors
from vmbackup.model.drill import (
    DRILL_LABEL,
    DrillReport,
    drill_marker,
    drill_problem,
    drill_report_object_name,
    drill_restore,
)
from vmbackup.model.policy import PolicyError
from vmbackup.model.restore import RESTORE_LABEL
from vmbackup.policy_task import PolicySource, PolicyTask
from vmbackup.report_upload import upload_report
from vmbackup.restore.plan import (
    RestorePlan,
    RestoreProblemError,
    instance_resource,
    plan_restore,
    planned_disk_resource,
)
from vmbackup.vm.marked import restart_source_if_marked

log = logging.getLogger(__name__)

PLAN_TASK = "plan"
BOOT_TASK = "boot"
GUEST_CHECK_TASK = "guest_check"
TEARDOWN_TASK = "teardown"
REPORT_TASK = "report"
TEARDOWN_TIMEOUT_SECONDS = 900
PLACEHOLDER_TIMEOUT_SECONDS = 24 * 3600  # replaced in execute() by the policy's guestCheck.timeoutSeconds


class DrillStepOperator(PolicyTask, ComputeStepOperator):
    """A drill step; a problem with the spec or the backups fails at once, unretried, naming the fix."""

    ui_color = "#fce8e6"

    def __init__(self, *, policy_json: str | None = None, policy_source: PolicySource | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.policy_json = policy_json
        self.policy_source = policy_source

    def execute(self, context: Any) -> Any:
        self.load_policy(context)
        return super().execute(context)

    def run_step(self, context: Any, hook: ComputeEngineHook) -> Any:
        try:
            return self.drill_step(context, hook)
        except (RestoreProblemError, PolicyError) as exc:
            raise AirflowFailException(drill_problem(str(exc))) from None

    def drill_step(self, context: Any, hook: ComputeEngineHook) -> Any:
        raise NotImplementedError


class PlanDrillOperator(DrillStepOperator):
    """Chooses the newest READY run and plans its restore as a labelled, isolated drill VM."""

    def drill_step(self, context: Any, hook: ComputeEngineHook) -> RestorePlan:
        policy = self.policy
        plan = plan_restore(drill_restore(policy, context["run_id"]), hook)
        if plan["source_exists"]:
            restart_source_if_marked(hook, plan["project"], plan["source_zone"], plan["source_instance"])
        marker = drill_marker(policy.namespace, policy.name)
        plan["instance"]["labels"][DRILL_LABEL] = marker
        for disk in plan["disks"]:
            disk["labels"][DRILL_LABEL] = marker
        return plan


class BootDrillOperator(DrillStepOperator):
    """Creates the disks and the drill VM and waits until it is RUNNING; returns how long the boot took."""

    template_fields = ("plan",)

    def __init__(self, *, plan: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.plan = plan

    def drill_step(self, context: Any, hook: ComputeEngineHook) -> dict[str, Any]:
        plan: RestorePlan = self.plan
        verification = self.policy.spec.verification
        deadline = time.monotonic() + (verification.boot_timeout_seconds if verification else 0)
        disk_ops = []
        for disk in plan["disks"]:
            why = f"restore drill of {plan['source_instance']} from snapshot {disk['snapshot']}"
            resource = planned_disk_resource(disk, why)
            ref = hook.insert_disk(disk["project"], disk["zone"], resource)
            if ref is not None:
                disk_ops.append(ref)
        for ref in disk_ops:
            _wait(hook, ref, deadline, "disks")
        requested = time.monotonic()
        ref = hook.insert_instance(plan["project"], plan["zone"], instance_resource(plan))
        if ref is not None:
            _wait(hook, ref, deadline, "the VM")
        boot_seconds = round(time.monotonic() - requested, 3)
        log.info("drill VM %s is RUNNING %.1f s after it was requested", plan["target"], boot_seconds)
        return {"instance": plan["target"], "zone": plan["zone"], "boot_seconds": boot_seconds}


def _wait(hook: ComputeEngineHook, ref: OperationRef, deadline: float, what: str) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise AirflowFailException(f"{what} not ready within spec.verification.bootTimeoutSeconds")
    op = hook.wait_done(ref, left)
    error = operation_error(op)
    if error:
        raise AirflowFailException(f"creating {what} failed: {error}")


class GuestCheckSensor(PolicyTask, _RecordingSensor):
    """Pokes the drill VM's serial port output until the policy's regular expression matches (or times out after
    the policy's guestCheck.timeoutSeconds)."""

    template_fields = ("plan",)

    def __init__(
        self, *, plan: Any, policy_json: str | None = None, policy_source: PolicySource | None = None, **kwargs: Any
    ):
        super().__init__(timeout=PLACEHOLDER_TIMEOUT_SECONDS, **kwargs)
        self.plan = plan
        self.policy_json = policy_json
        self.policy_source = policy_source

    def execute(self, context: Any) -> Any:
        self.load_policy(context)
        verification = self.policy.spec.verification
        check = verification.guest_check if verification else None
        self.timeout = float(check.timeout_seconds if check else 60)
        return super().execute(context)

    def poke(self, context: Any) -> bool:
        verification = self.policy.spec.verification
        check = verification.guest_check if verification else None
        if check is None:
            return True
        plan: RestorePlan = self.plan
        output = ComputeEngineHook().serial_port_output(plan["project"], plan["zone"], plan["target"], check.port)
        if re.search(check.serial_port_regex, output.contents, re.MULTILINE):
            log.info("guest check passed: serial port %d matches %r", check.port, check.serial_port_regex)
            return True
        log.info("serial port %d does not match %r yet (%d bytes)", check.port, check.serial_port_regex, output.next_)
        return False


class TeardownDrillOperator(DrillStepOperator):
    """Deletes every VM, then every disk, labelled with the policy's drill marker: always (trigger rule all_done).

    Only resources carrying both the restore marker and the drill label are touched; the source VM and the
    snapshots never carry them. Returns {"deleted": [...], "left_over": [...]}.
    """

    def __init__(self, *, zone_of_plan: Any, timeout_seconds: int = TEARDOWN_TIMEOUT_SECONDS, **kwargs: Any):
        super().__init__(**kwargs)
        self.zone_of_plan = zone_of_plan
        self.timeout_seconds = timeout_seconds

    template_fields = ("zone_of_plan",)

    def drill_step(self, context: Any, hook: ComputeEngineHook) -> dict[str, list[str]]:
        policy = self.policy
        plan = self.zone_of_plan if isinstance(self.zone_of_plan, dict) else None
        zone = plan["zone"] if plan else None
        if zone is None:
            return {"deleted": [], "left_over": []}  # the plan failed: nothing was created
        project, marker = policy.spec.project, drill_marker(policy.namespace, policy.name)
        ours = {RESTORE_LABEL: marker, DRILL_LABEL: marker}
        deleted: list[str] = []
        for instance in hook.list_instances(project, [zone], ours):
            log.info("Deleting drill VM %s", instance.name)
            ref = hook.delete_instance(project, zone, instance.name)
            if ref is not None:
                hook.wait_done(ref, self.timeout_seconds)
            deleted.append(instance.name)
        for disk in hook.list_disks(project, zone, ours):
            if disk.users:
                continue
            ref = hook.delete_disk(project, zone, disk.name)
            if ref is not None:
                hook.wait_done(ref, self.timeout_seconds)
            deleted.append(disk.name)
        left = [i.name for i in hook.list_instances(project, [zone], ours)]
        left += [d.name for d in hook.list_disks(project, zone, ours)]
        if left:
            raise AirflowFailException(f"drill resources left after teardown: {', '.join(left)}; delete them")
        return {"deleted": deleted, "left_over": left}


class DrillReportOperator(DrillStepOperator):
    """Writes the drill report (Succeeded only when every step did and nothing was left); fails a failed drill."""

    def drill_step(self, context: Any, hook: ComputeEngineHook) -> dict[str, Any]:
        policy = self.policy
        ti = context["ti"]
        errors: list[dict[str, Any]] = []
        for task_id in (PLAN_TASK, BOOT_TASK, GUEST_CHECK_TASK, TEARDOWN_TASK):
            errors.extend(recorded_errors(ti, task_id, [-1]))
        plan = ti.xcom_pull(task_ids=PLAN_TASK)
        boot = ti.xcom_pull(task_ids=BOOT_TASK) or {}
        teardown = ti.xcom_pull(task_ids=TEARDOWN_TASK) or {}
        verification = policy.spec.verification
        check = verification.guest_check if verification else None
        first = errors[0] if errors else None
        succeeded = first is None and bool(plan) and bool(boot)
        guest = None
        if check is not None:
            failed_guest = first is not None and first["step"] == GUEST_CHECK_TASK
            guest = (
                f"serial port {check.port} matched {check.serial_port_regex!r}"
                if succeeded
                else f"serial port {check.port} did not match {check.serial_port_regex!r} within "
                f"{check.timeout_seconds} s"
                if failed_guest
                else None
            )
        if succeeded:
            message = f"run {plan['run']} restored as {plan['target']}, RUNNING after {boot['boot_seconds']} s" + (
                f"; {guest}" if guest else ""
            )
        else:
            message = (first or {}).get("message") or "the drill did not finish"
            if guest:
                message = f"{guest}: {message}"
        report = DrillReport(
            namespace=policy.namespace,
            name=policy.name,
            dag_id=context["dag"].dag_id,
            run_id=context["run_id"],
            result="Succeeded" if succeeded else "Failed",
            source_instance=plan["source_instance"] if plan else None,
            zone=plan["zone"] if plan else None,
            drill_instance=plan["target"] if plan else None,
            snapshot_run=plan["run"] if plan else None,
            snapshots=plan["snapshots"] if plan else [],
            boot_seconds=boot.get("boot_seconds"),
            guest_check=guest,
            message=message,
            failed_step=first["step"] if first else None,
            deleted=list(teardown.get("deleted") or []),
            left_over=list(teardown.get("left_over") or []),
            finished_at=datetime.now(UTC),
        )
        write_drill_report(report)
        if not succeeded:
            raise AirflowFailException(f"restore drill failed: {report.failed_step or 'report'}: {message}")
        return report.model_dump(mode="json", by_alias=True)


def write_drill_report(report: DrillReport) -> None:
    """The controller reads status.verification from here."""
    upload_report(report, [drill_report_object_name(report.namespace, report.name)], "drill report")
