"""Builds a policy's restore-drill DAG from the policy DATA (its canonical JSON); rendered drill DAG files call it.

Scheduled by spec.verification.schedule (in the policy's time zone; `vmbackupctl verify` triggers one at once):
plan -> boot -> guest check -> teardown (always) -> report (always). Nothing here does I/O at parse time.
"""

from __future__ import annotations

from typing import Any

from vmbackup.model.drill import drill_dag_id_for
from vmbackup.model.policy import BackupPolicy, cron_of
from vmbackup.settings import AirflowSettings
from vmbackup.start_dates import first_start

TEARDOWN_TIMEOUT_SECONDS = 900


def build_drill_dag(policy_json: str) -> Any:
    from vmbackup.airflow_compat import DAG, CronTriggerTimetable
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

    policy = BackupPolicy.from_json(policy_json)
    verification = policy.spec.verification
    if verification is None:
        raise ValueError(f"policy {policy.namespace}/{policy.name} has no spec.verification: no drill DAG")
    check = verification.guest_check
    settings = AirflowSettings.from_env()
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
        default_args=settings.task_defaults(),
    )
    with dag:
        plan = PlanDrillOperator(task_id=PLAN_TASK, policy_json=policy_json)
        boot = BootDrillOperator(
            task_id=BOOT_TASK,
            plan=plan.output,
            policy_json=policy_json,
            timeout_seconds=verification.boot_timeout_seconds,
        )
        guest = GuestCheckSensor(
            task_id=GUEST_CHECK_TASK,
            plan=plan.output,
            policy_json=policy_json,
            timeout=check.timeout_seconds if check else 60,
            poke_interval=settings.poke_interval_seconds,
            retries=0,  # a timed-out check is the drill's answer, not a transient error
        )
        teardown = TeardownDrillOperator(
            task_id=TEARDOWN_TASK,
            policy_json=policy_json,
            zone_of_plan=plan.output,
            timeout_seconds=TEARDOWN_TIMEOUT_SECONDS,
            trigger_rule="all_done",
        )
        report = DrillReportOperator(task_id=REPORT_TASK, policy_json=policy_json, trigger_rule="all_done", retries=0)
        plan >> boot >> guest >> teardown >> report
        plan >> teardown
    return dag
