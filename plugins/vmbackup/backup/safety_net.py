"""The safety net of a stop-mode run: every VM this run stopped is started again, whatever failed before.

Runs with trigger rule all_done after every tier's start step. Its task id (`restore_instances`) predates
the class's name and stays, as Airflow's history and the report name it.
"""

from __future__ import annotations

import logging
from typing import Any

from vmbackup.airflow_compat import AirflowException
from vmbackup.backup.lock import release_lock, start_if_ours
from vmbackup.backup.resolution import all_targets, pulled_resolution
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.compute.step_operator import ComputeStepOperator

log = logging.getLogger(__name__)


class RestartStoppedInstancesOperator(ComputeStepOperator):
    """Any instance still carrying this run's lock is started (if stopped) and unlocked."""

    def __init__(self, *, start_timeout_seconds: int, stopping_timeout_seconds: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.start_timeout_seconds = start_timeout_seconds
        self.stopping_timeout_seconds = stopping_timeout_seconds

    def run_step(self, context: Any, hook: ComputeEngineHook) -> list[str]:
        restarted: list[str] = []
        problems: list[str] = []
        for target in all_targets(pulled_resolution(context)):
            try:
                ref = start_if_ours(hook, target, self.stopping_timeout_seconds)
                if ref is not None:
                    log.warning("%s was left stopped by a failed step: starting it", target["instance"])
                    hook.wait_done(ref, self.start_timeout_seconds)
                    restarted.append(target["instance"])
                release_lock(hook, target)
            except Exception as exc:
                log.exception("could not restart %s", target["instance"])
                problems.append(f"{target['instance']}: {exc}")
        if problems:
            raise AirflowException("could not restore instances: " + "; ".join(problems))
        return restarted
