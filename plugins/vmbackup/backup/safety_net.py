"""The safety net of a stop-mode run: every VM this run stopped is started again, whatever failed before.

Runs with trigger rule all_done after every tier's start step. Its task id (`restore_instances`) predates
the class's name and stays, as Airflow's history and the report name it.
"""

from __future__ import annotations

import logging
from typing import Any

from vmbackup.airflow_compat import AirflowException
from vmbackup.backup.resolution import Target, pulled_resolution
from vmbackup.backup.window_records import came_up, group_records
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.compute.step_operator import ComputeStepOperator
from vmbackup.vm.marked import bring_back_if_ours

log = logging.getLogger(__name__)


class RestartStoppedInstancesOperator(ComputeStepOperator):
    """Any instance still carrying this run's lock is started (if stopped) and unlocked.

    A VM whose window recorded it given back (started and released, no error) is not read again: the records are
    the window's own DONE operations, and a fleet's reads count against the project's rate quotas."""

    def __init__(
        self,
        *,
        start_timeout_seconds: int,
        stopping_timeout_seconds: int,
        group_ids: dict[str, str] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.start_timeout_seconds = start_timeout_seconds
        self.stopping_timeout_seconds = stopping_timeout_seconds
        self.group_ids = group_ids or {}

    def _unsettled(self, context: Any) -> list[Target]:
        """The run's VMs whose window did not record them given back (all of them when the records are unknown)."""
        resolution = pulled_resolution(context)
        if not resolution:
            return []
        existing = set(self.dag.task_ids)
        left: list[Target] = []
        for key, members in resolution["groups"].items():
            group = self.group_ids.get(key)
            records = group_records(context["ti"], existing, resolution, key, group) if group else None
            left.extend(t for t in members if records is None or not came_up(records.up(t)))
        return left

    def run_step(self, context: Any, hook: ComputeEngineHook) -> list[str]:
        restarted: list[str] = []
        problems: list[str] = []
        for target in self._unsettled(context):
            try:
                if bring_back_if_ours(
                    hook,
                    target,
                    timeout_seconds=self.start_timeout_seconds,
                    stopping_seconds=self.stopping_timeout_seconds,
                    poll_seconds=1.0,
                ):
                    log.warning("%s was left stopped by a failed step: started it", target["instance"])
                    restarted.append(target["instance"])
            except Exception as exc:
                log.exception("could not restart %s", target["instance"])
                problems.append(f"{target['instance']}: {exc}")
        if problems:
            raise AirflowException("could not restore instances: " + "; ".join(problems))
        return restarted
