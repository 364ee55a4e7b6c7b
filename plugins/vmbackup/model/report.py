"""The reports the DAGs write and the controller reads: a backup run's, per instance and disk, and a restore's.

Written by each DAG's report task (its return value, and JSON in the Composer bucket, see report_upload) and
read by the controller to fill the custom resource's status. One model per report, both sides.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from vmbackup.model.restore import Phase, RestoreMode
from vmbackup.model.slots import MissReason

REPORTS_PREFIX = "data/vmbackup/runs"
RESTORES_PREFIX = "data/vmbackup/restores"

RunResult = Literal["succeeded", "failed"]
DiskState = Literal["READY", "UPLOADING", "CREATING", "FAILED", "SKIPPED"]


class ReportModel(BaseModel):
    """camelCase on the wire, like the CRDs; unknown fields ignored (a newer writer may add some)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class DiskResult(ReportModel):
    disk: str
    zone: str
    snapshot: str | None = None
    state: DiskState = "SKIPPED"
    error: str | None = None
    method: str | None = None  # how the point in time was cut: standard, or instant (then converted)
    note: str | None = None  # e.g. an instant snapshot refused for a per-disk limit, a standard one taken instead


class InstanceResult(ReportModel):
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
    note: str | None = None  # what happened after this run gave the VM back (e.g. another policy's run took it)
    error: str | None = None


class StepError(ReportModel):
    step: str  # task id, e.g. "tier_web.stop"
    instance: str | None = None
    disk: str | None = None
    message: str


class MissedSlot(ReportModel):
    """A scheduled slot the run did not back up: it touched no VM (checked when the run started)."""

    slot: datetime  # the slot's time (the run's logical date)
    reason: MissReason
    message: str


class RunReport(ReportModel):
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
    slot: datetime | None = None  # the scheduled slot of this run; None for a backup asked for by hand
    missed: MissedSlot | None = None

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


class RestoreReport(ReportModel):
    """What a restore run did so far; written to the bucket at each phase, read by the controller."""

    namespace: str
    name: str
    dag_id: str
    run_id: str
    phase: Phase
    source_instance: str
    source_zone: str | None = None
    instance: str
    zone: str | None = None
    snapshot_run: str | None = None
    snapshots: list[str] = Field(default_factory=list)
    created_disks: list[str] = Field(default_factory=list)
    deleted_disks: list[str] = Field(default_factory=list)
    mode: RestoreMode = "NewInstance"
    replaced_disks: list[str] = Field(default_factory=list)  # InPlace: the original disks the restore detached
    rolled_back: bool = False  # InPlace: a failure put the original disks back and started the VM again
    message: str | None = None
    failed_step: str | None = None
    updated_at: datetime | None = None


def restore_report_object_name(namespace: str, name: str) -> str:
    return f"{RESTORES_PREFIX}/{namespace}/{name}.json"
