"""The run report: what a backup run did, per instance and disk.

Written by the DAG's final task (its return value, and JSON in the Composer bucket) and read by the
controller to fill the policy's status. One model, both sides.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

REPORTS_PREFIX = "data/vmbackup/runs"

RunResult = Literal["succeeded", "failed"]
DiskState = Literal["READY", "UPLOADING", "CREATING", "FAILED", "SKIPPED"]


class _ReportModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class DiskResult(_ReportModel):
    disk: str
    zone: str
    snapshot: str | None = None
    state: DiskState = "SKIPPED"
    error: str | None = None


class InstanceResult(_ReportModel):
    instance: str
    zone: str
    tier: str | None = None
    prior_status: str | None = None  # status before the run touched it (RUNNING, TERMINATED, ...)
    final_status: str | None = None  # status when the run ended; equals prior_status on a correct run
    stopped_at: datetime | None = None
    started_at: datetime | None = None
    downtime_seconds: float | None = None
    disks: list[DiskResult] = Field(default_factory=list)
    skipped_reason: str | None = None  # e.g. another run holds the VM
    error: str | None = None


class StepError(_ReportModel):
    step: str  # task id, e.g. "tier_web.stop"
    instance: str | None = None
    disk: str | None = None
    message: str


class RunReport(_ReportModel):
    namespace: str
    name: str
    dag_id: str
    run_id: str
    consistency: str
    result: RunResult
    started_at: datetime | None = None
    finished_at: datetime | None = None
    instances: list[InstanceResult] = Field(default_factory=list)
    pruned_snapshots: list[str] = Field(default_factory=list)
    errors: list[StepError] = Field(default_factory=list)

    @property
    def snapshots(self) -> list[str]:
        return [d.snapshot for i in self.instances for d in i.disks if d.snapshot and d.state == "READY"]

    @property
    def failed_step(self) -> StepError | None:
        return self.errors[0] if self.errors else None


def report_object_name(namespace: str, name: str, run_id: str) -> str:
    """Bucket object of one run's report; run ids carry ':' and '+', kept readable but path-safe."""
    safe_run = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)
    return f"{REPORTS_PREFIX}/{namespace}/{name}/{safe_run}.json"


def latest_report_object_name(namespace: str, name: str) -> str:
    return f"{REPORTS_PREFIX}/{namespace}/{name}/latest.json"
