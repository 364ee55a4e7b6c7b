"""Builds the keeper DAG (`vmbackup_keeper`) from its config; the rendered vmkeeper DAG file calls it.

CONFIG is data, never code: {"projects": [...], "schedule": "<cron>"}. One task, one run at a time, no catchup
(a pass looks at the instances as they are, so a missed interval needs no run of its own). No I/O at parse time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from vmbackup.model.keeper_report import KEEPER_DAG_ID

DEFAULT_SCHEDULE = "*/5 * * * *"
START_DATE = datetime(2024, 1, 1, tzinfo=UTC)


def build_keeper_dag(config: dict[str, Any]) -> Any:
    from vmbackup.airflow_compat import DAG, CronTriggerTimetable
    from vmbackup.keeper.operators import KEEP_TASK, KeepStoppedVmsOperator
    from vmbackup.settings import AirflowSettings

    projects = [str(p) for p in config.get("projects", [])]
    dag = DAG(
        dag_id=KEEPER_DAG_ID,
        schedule=CronTriggerTimetable(str(config.get("schedule") or DEFAULT_SCHEDULE), timezone="UTC"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=["vmbackup", "keeper"],
        doc_md="# VM keeper\n\nManaged by **vmbackup-operator**: starts every VM a backup, restore or drill stopped "
        "and could not start again (a stockout), and reports those still stopped.",
        description="Starts the VMs vmbackup-operator stopped and could not start again",
        default_args=AirflowSettings.from_env().task_defaults(),
    )
    with dag:
        KeepStoppedVmsOperator(task_id=KEEP_TASK, projects=projects)
    return dag
