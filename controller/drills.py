"""Restore drills in the controller: each drill's report into the policy status.

Drills run in the shared drill DAG; controller/drill_runs.py starts them. Each status refresh reads the drill
report a drill leaves in the bucket (one GET, only for policies that ask for drills) and fills status.verification
and the RestoreVerified condition; a drill that finished since the last look also gets an Event and the drill
metrics.

status.verification: ``result``, ``message`` and ``time`` describe the latest drill; ``lastVerifiedRun``,
``snapshots`` and ``bootSeconds`` the latest *successful* one (a failed drill leaves them as they were).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from google.cloud import storage
from pydantic import ValidationError

from controller.conditions import RESTORE_VERIFIED, Condition, changed_fields, merge_conditions, rfc3339
from controller.metrics import ControllerMetrics
from controller.status import short
from vmbackup.model.drill import DrillReport, drill_report_object_name

logger = logging.getLogger(__name__)


def read_drill_report(bucket: storage.Bucket, namespace: str, name: str) -> DrillReport | None:
    blob = bucket.get_blob(drill_report_object_name(namespace, name))
    if blob is None:
        return None
    try:
        return DrillReport.model_validate_json(blob.download_as_bytes())
    except ValidationError as exc:
        logger.warning("drill report of %s/%s is unreadable: %s", namespace, name, exc)
        return None


def verification_condition(report: DrillReport) -> Condition:
    if report.result == "Succeeded":
        return Condition(RESTORE_VERIFIED, "True", "DrillSucceeded", short(report.message))
    reason = "GuestCheckFailed" if report.failed_step == "guest_check" else "DrillFailed"
    return Condition(RESTORE_VERIFIED, "False", reason, short(report.message))


def verification_status(report: DrillReport, previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """status.verification for this report (NAMES.md: lastVerifiedRun, snapshots, time, bootSeconds, result,
    message)."""
    shown = dict(previous or {})
    finished = report.finished_at or datetime.now(UTC)
    shown.update(
        result=report.result,
        message=short(report.message),
        time=rfc3339(finished),
    )
    if report.result == "Succeeded":
        shown.update(lastVerifiedRun=report.snapshot_run, snapshots=list(report.snapshots))
        if report.boot_seconds is not None:
            shown["bootSeconds"] = report.boot_seconds
    return {k: v for k, v in shown.items() if v is not None}


class DrillStatus:
    """Reads drill reports into policy status; posts one Event and one metric update per finished drill."""

    def __init__(self, metrics: ControllerMetrics) -> None:
        self.metrics = metrics

    async def refresh(
        self, body: kopf.Body, patch: kopf.Patch, bucket: storage.Bucket, generation: int
    ) -> DrillReport | None:
        namespace, name = str(body.metadata.namespace), str(body.metadata.name)
        if not (body.get("spec") or {}).get("verification"):
            return None
        report = await asyncio.to_thread(read_drill_report, bucket, namespace, name)
        if report is None:
            return None
        current = dict(body.get("status") or {})
        previous = current.get("verification") or {}
        if report.finished_at is not None and rfc3339(report.finished_at) < str(previous.get("time") or ""):
            return report  # a newer result is shown (a drill that failed before reporting: drill_runs.py)
        desired = verification_status(report, previous)
        base = patch.status.get("conditions") or current.get("conditions")
        conditions = merge_conditions(
            base, [verification_condition(report)], generation=generation, now=datetime.now(UTC)
        )
        changed = changed_fields(current, {"verification": desired, "conditions": conditions})
        if changed:
            patch.status.update(changed)
        if desired.get("time") != previous.get("time") or desired.get("result") != previous.get("result"):
            self._announce(body, report)
        return report

    def _announce(self, body: kopf.Body, report: DrillReport) -> None:
        self.metrics.drill_runs.labels(report.namespace, report.name, report.result).inc()
        if report.result == "Succeeded":
            finished = report.finished_at or datetime.now(UTC)
            self.metrics.drill_last_success.labels(report.namespace, report.name).set(finished.timestamp())
            kopf.event(body, type="Normal", reason="RestoreVerified", message=short(report.message))
        else:
            kopf.event(body, type="Warning", reason="RestoreDrillFailed", message=short(report.message))
