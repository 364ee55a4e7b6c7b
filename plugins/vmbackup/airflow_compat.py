"""One place that knows where Airflow 3 (Task SDK) and Airflow 2.10 (Composer 2) keep the names we use.

Everything else in vmbackup imports Airflow through this module, so supporting a new Airflow line is a
change here only. Importing it imports Airflow: keep it out of `vmbackup/__init__.py`.
"""

from __future__ import annotations

from typing import Any

try:  # Airflow 3.x
    from airflow.sdk import (
        DAG,
        BaseOperator,
        BaseSensorOperator,
        CronTriggerTimetable,
        PokeReturnValue,
        TaskGroup,
        TriggerRule,
        XComArg,
        task,
        task_group,
    )
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowRescheduleException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )

    AIRFLOW_3 = True
except ImportError:  # Airflow 2.10
    from airflow import DAG  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]
    from airflow.decorators import task, task_group  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]
    from airflow.exceptions import (  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]
        AirflowException,
        AirflowFailException,
        AirflowRescheduleException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
    from airflow.models.baseoperator import BaseOperator  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]
    from airflow.models.xcom_arg import XComArg  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]
    from airflow.sensors.base import BaseSensorOperator, PokeReturnValue  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]
    from airflow.timetables.trigger import CronTriggerTimetable  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]
    from airflow.utils.task_group import TaskGroup  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]
    from airflow.utils.trigger_rule import TriggerRule  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]

    AIRFLOW_3 = False

from airflow.triggers.base import BaseTrigger, TriggerEvent  # both lines keep triggers here

# Exceptions Airflow uses for control flow (reschedule, defer, skip): never recorded as a step's error.
CONTROL_FLOW_EXCEPTIONS: tuple[type[BaseException], ...] = (
    AirflowRescheduleException,
    TaskDeferred,
    AirflowSkipException,
)


def first_reschedule_date(context: Any) -> Any:
    """When a reschedule-mode sensor's first poke began (None during that first poke), as BaseSensorOperator reckons
    its timeout on each line: from the task_reschedule rows of the task's first try."""
    ti = context["ti"]
    if AIRFLOW_3:
        return ti.get_first_reschedule_date(context)
    from airflow.sensors.base import _orig_start_date  # 2.10's own helper for exactly this

    first_try = (ti.max_tries or 0) - (ti.task.retries or 0) + 1
    return _orig_start_date(
        dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, map_index=ti.map_index, try_number=first_try
    )


def xcom_values(ti: Any, task_id: str, map_indexes: list[int], key: str = "return_value") -> list[Any]:
    """XCom values of one task's instances that exist, on both lines (3.x returns None for missing ones)."""
    if not map_indexes:
        return []
    if AIRFLOW_3:  # one request for every map index (asking index by index logs each missing one as an error)
        found = ti.xcom_pull(task_ids=[task_id], key=key)
    else:
        found = ti.xcom_pull(task_ids=[task_id], key=key, map_indexes=map_indexes)
    if found is None:
        return []
    return [value for value in list(found) if value is not None]  # 2.10 returns a lazy sequence


__all__ = [
    "AIRFLOW_3",
    "CONTROL_FLOW_EXCEPTIONS",
    "DAG",
    "AirflowException",
    "AirflowFailException",
    "AirflowRescheduleException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseOperator",
    "BaseSensorOperator",
    "BaseTrigger",
    "CronTriggerTimetable",
    "PokeReturnValue",
    "TaskDeferred",
    "TaskGroup",
    "TriggerEvent",
    "TriggerRule",
    "XComArg",
    "first_reschedule_date",
    "task",
    "task_group",
    "xcom_values",
]
