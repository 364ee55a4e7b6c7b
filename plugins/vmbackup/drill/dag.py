"""The drill's task graph, and a policy's own drill DAG as earlier versions rendered it.

plan -> boot -> guest check -> teardown (always) -> report (always). The controller now starts drills as runs of
the shared drill DAG (vmbackup.drill.shared_dag); `build_drill_dag` stays for the per-policy files earlier versions
uploaded, so a drill in flight at an upgrade still tears down and reports: the controller deletes such a file
once no run of it is queued or running. Nothing here does I/O at parse time.
"""

from __future__ import annotations

from typing import Any

from vmbackup.model.drill import drill_dag_id_for
from vmbackup.model.policy import BackupPolicy, cron_of
from vmbackup.policy_task import PolicySource
from vmbackup.settings import AirflowSettings
from vmbackup.start_dates import first_start


def add_drill_steps(dag: Any, policy_json: str | None, policy_source: PolicySource | None = None) -> None:
    """The drill's tasks; `policy_json` None: each task reads the policy from `policy_source` when it runs."""
    from vmbackup.drill.operators import (
        BOOT_TASK,
        GUEST_CHECK_TASK,
        PLAN_TASK,
        REPORT_TASK,
        TEARDOWN_TASK,
        BootDrillOperator,
        DrillReportOperator,
        GuestCheckSensor,
        PlanDrillOperator,
        TeardownDrillOperator,
    )

    policy: dict[str, Any] = {"policy_json": policy_json, "policy_source": policy_source}
    with dag:
        plan = PlanDrillOperator(task_id=PLAN_TASK, **policy)
        boot = BootDrillOperator(task_id=BOOT_TASK, plan=plan.output, **policy)
        guest = GuestCheckSensor(
            task_id=GUEST_CHECK_TASK,
            plan=plan.output,
            poke_interval=AirflowSettings.from_env().poke_interval_seconds,
            retries=0,  # a timed-out check is the drill's answer, not a transient error
            **policy,
        )
        teardown = TeardownDrillOperator(
            task_id=TEARDOWN_TASK, zone_of_plan=plan.output, trigger_rule="all_done", **policy
        )
        report = DrillReportOperator(task_id=REPORT_TASK, trigger_rule="all_done", retries=0, **policy)
        plan >> boot >> guest >> teardown >> report
        plan >> teardown


def build_drill_dag(policy_json: str) -> Any:
    """The drill DAG of one policy whose data is in its own DAG file (files rendered by earlier versions)."""
    from vmbackup.airflow_compat import DAG, CronTriggerTimetable

    policy = BackupPolicy.from_json(policy_json)
    verification = policy.spec.verification
    if verification is None:
        raise ValueError(f"policy {policy.namespace}/{policy.name} has no spec.verification: no drill DAG")
    dag = DAG(
        dag_id=drill_dag_id_for(policy.namespace, policy.name),
        schedule=CronTriggerTimetable(cron_of(verification.schedule), timezone=policy.spec.timezone),
        start_date=first_start(policy),
        catchup=False,
        max_active_runs=1,
        tags=["vmbackup", "restore-drill", f"namespace:{policy.namespace}", f"policy:{policy.name}"],
        doc_md=f"# Restore drill of `{policy.namespace}/{policy.name}`\n\nManaged by **vmbackup-operator**: "
        "restores the newest READY backup run into a throwaway VM, checks it and deletes it again.",
        description=f"Restore drills of policy {policy.namespace}/{policy.name}",
        default_args=AirflowSettings.from_env().task_defaults(),
    )
    add_drill_steps(dag, policy_json)
    return dag
