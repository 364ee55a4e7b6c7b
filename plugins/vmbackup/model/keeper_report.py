"""The keeper's report: the instances this product stopped that are not RUNNING again yet.

Written by the keeper DAG (one per environment, on its own schedule) after each pass, read by the controller for
the `VMLeftStopped` alert, the `vmbackup_vms_left_stopped` metric and the owning policy's condition. One model,
both sides, camelCase on the wire like the run reports.
"""

from __future__ import annotations

from datetime import datetime

from vmbackup.model.report import ReportModel

KEEPER_REPORT_OBJECT = "data/vmbackup/keeper/latest.json"
KEEPER_DAG_ID = "vmbackup_keeper"  # the one keeper DAG of an environment (keeper/dag.py)


class LeftStoppedInstance(ReportModel):
    """An instance carrying the stopped-by mark (labels.STOPPED_BY) that the keeper could not start yet."""

    project: str
    zone: str
    instance: str
    stopped_by: str  # the run hash in the mark
    stopped_at: datetime | None = None
    status: str  # the instance's status when last read (TERMINATED, STOPPING, SUSPENDED, ...)
    namespace: str | None = None  # the owning policy, from the instance's lock-holder labels when present
    policy: str | None = None
    attempts: int = 0  # start attempts by the keeper since the mark was set
    last_error: str | None = None  # Compute Engine's own words, e.g. ZONE_RESOURCE_POOL_EXHAUSTED: ...
    next_attempt_at: datetime | None = None


class KeeperReport(ReportModel):
    written_at: datetime
    projects: list[str]  # the projects the pass looked at (a project missing here was not checked)
    left_stopped: list[LeftStoppedInstance] = []
    started: list[LeftStoppedInstance] = []  # instances the pass brought back to RUNNING (mark removed)
