"""The last run's report from the Composer bucket, for describe: what happened to each VM and disk.

The status carries the outcome; the report (written by the DAG, see vmbackup.model.report) says per
instance how long it was down and per disk which snapshot it got or why not. Reading it is best
effort: describe stays useful with only Kubernetes access, so a missing target or an unreachable
bucket becomes one line in the output, not a failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from controller.config import ControllerConfig
from controller.run_reports import find_run_report
from controller.vmbackupctl.errors import CliError
from vmbackup.model.report import RunReport

BUCKET_TIMEOUT_SECONDS = 10.0
BUCKET_DEADLINE_SECONDS = 20.0  # retries included: a person is waiting


class ReportUnavailable(Exception):  # noqa: N818 - reads as the outcome
    """Why no report is shown (no target configured, bucket unreachable, no report for the run)."""


def read_last_report(config: ControllerConfig | None, obj: Mapping[str, Any]) -> RunReport:
    """The report of the run the status names as the last one (latest.json when it is that run's)."""
    from controller.vmbackupctl.logs import resolve_target

    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    run_id = (status.get("lastRun") or {}).get("runId")
    if not run_id:
        raise ReportUnavailable("no run yet")
    if config is None or (not config.has_default_target and not spec.get("composer")):
        raise ReportUnavailable("no Composer target configured (VMBACKUP_* settings or flags)")
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    try:
        target = asyncio.run(resolve_target(config, namespace, dict(spec)))
    except CliError as exc:
        raise ReportUnavailable(exc.message) from None
    bucket = _bucket(target.bucket)
    report = find_run_report(lambda object_name: _download(bucket, object_name), namespace, name, run_id)
    if report is not None:
        return report
    raise ReportUnavailable(f"run {run_id} left no report in gs://{target.bucket}")


def report_lines(report: RunReport) -> list[str]:
    """Per instance: status change and downtime; per disk: snapshot and state; then the errors."""
    lines = [f"Run Report ({report.run_id}, {report.consistency}, {report.result}):"]
    for inst in report.instances:
        head = f"  {inst.instance} ({inst.zone})"
        if inst.tier:
            head += f" tier {inst.tier}"
        if inst.prior_status or inst.final_status:
            head += f": {inst.prior_status or '?'} -> {inst.final_status or '?'}"
        if inst.downtime_seconds is not None:
            head += f", down {inst.downtime_seconds:g}s"
        if inst.skipped_reason:
            head += f", skipped: {inst.skipped_reason}"
        if inst.error:
            head += f", error: {inst.error}"
        lines.append(head)
        if inst.note:  # e.g. the fix for a guest that cannot flush (backup/preflight.py)
            lines.append(f"    note: {inst.note}")
        for disk in inst.disks:
            text = f"    {disk.disk}: {disk.snapshot or '<no snapshot>'} {disk.state}"
            lines.append(text + (f" ({disk.error})" if disk.error else ""))
    if report.pruned_snapshots:
        lines.append(f"  Pruned: {', '.join(report.pruned_snapshots)}")
    for error in report.errors:
        where = " ".join(part for part in (error.instance, error.disk) if part)
        lines.append(f"  Error at {error.step}{f' ({where})' if where else ''}: {error.message}")
    return lines


def _bucket(name: str) -> Any:
    from google.cloud import storage

    try:
        return storage.Client().bucket(name)
    except Exception as exc:  # no credentials, no project: say so and go on
        raise ReportUnavailable(f"cannot use Cloud Storage: {_first_line(exc)}") from None


def _download(bucket: Any, object_name: str) -> RunReport | None:
    from google.api_core import exceptions as gexc
    from google.cloud.storage.retry import DEFAULT_RETRY

    where = f"gs://{bucket.name}/{object_name}"
    try:
        data = bucket.blob(object_name).download_as_bytes(
            timeout=BUCKET_TIMEOUT_SECONDS, retry=DEFAULT_RETRY.with_timeout(BUCKET_DEADLINE_SECONDS)
        )
    except gexc.NotFound:
        return None
    except Exception as exc:
        raise ReportUnavailable(f"cannot read {where}: {_first_line(exc)}") from None
    try:
        return RunReport.model_validate_json(data)
    except ValidationError as exc:
        raise ReportUnavailable(f"{where} is not a valid run report ({exc.error_count()} problem(s))") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
