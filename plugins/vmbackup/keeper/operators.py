"""The keeper's one step: a pass over the configured projects, its report written to the bucket."""

from __future__ import annotations

import logging
from typing import Any

from vmbackup.airflow_compat import AirflowException
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.compute.step_operator import ComputeStepOperator
from vmbackup.keeper.sweep import keep
from vmbackup.model.keeper_report import KEEPER_REPORT_OBJECT
from vmbackup.report_upload import upload_report

log = logging.getLogger(__name__)

KEEP_TASK = "keep_stopped_vms"


class KeepStoppedVmsOperator(ComputeStepOperator):
    """Starts the VMs this product stopped and could not start again; fails only when a project was not looked at
    (the report, written first, says which projects were)."""

    def __init__(self, *, projects: list[str], poll_seconds: float = 1.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.projects = projects
        self.poll_seconds = poll_seconds

    def run_step(self, context: Any, hook: ComputeEngineHook) -> dict[str, Any]:
        report, failed = keep(hook, list(self.projects), poll_seconds=self.poll_seconds)
        upload_report(report, [KEEPER_REPORT_OBJECT], "keeper report")
        for entry in report.left_stopped:
            log.warning(
                "%s (%s/%s) is still %s: %s",
                entry.instance,
                entry.project,
                entry.zone,
                entry.status,
                entry.last_error or f"next try at {entry.next_attempt_at}",
            )
        if failed:
            raise AirflowException(
                "the keeper could not look at " + "; ".join(f"project {p}: {why}" for p, why in sorted(failed.items()))
            )
        return report.model_dump(mode="json", by_alias=True)
