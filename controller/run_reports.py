"""Reading the run reports the backup DAG leaves in the Composer bucket.

The DAG's last task writes ``data/vmbackup/runs/<ns>/<name>/<run>.json`` and ``latest.json``;
the report names the snapshots and the failed step in terms Airflow does not know. The report is
written before its run ends and never changes afterwards, so for a finished run it is looked up
once (found or not) and served from memory while that run stays the policy's latest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import datetime

from google.api_core import exceptions as gcs_errors
from google.cloud import storage
from pydantic import ValidationError

from vmbackup.model.report import RunReport, latest_report_object_name, report_object_name


def find_run_report(
    download: Callable[[str], RunReport | None], namespace: str, name: str, run_id: str
) -> RunReport | None:
    """A run's report: ``latest.json`` when it is that run's (the common case), else the run's own object.

    The one lookup of the controller and vmbackupctl; ``download`` gives None for a missing object.
    """
    for object_name in (latest_report_object_name(namespace, name), report_object_name(namespace, name, run_id)):
        report = download(object_name)
        if report is not None and report.run_id == run_id:
            return report
    return None


class RunReportError(Exception):
    """A report exists but cannot be used (not JSON, not a RunReport); the object is left untouched."""


class RunReportReader:
    """Fetches the report of a policy's finished run, remembering the answer for the policy's latest run."""

    def __init__(self, bucket: storage.Bucket) -> None:
        self.bucket = bucket
        self.reads = 0  # bucket GETs, for benchmarks
        # (namespace, name) -> ((run id, when it ended), report): a run id names a slot, and the same slot can run
        # again under the same id (a new Airflow metadata DB, a deleted DAG), so its end tells the runs apart.
        self._cache: dict[tuple[str, str], tuple[tuple[str, datetime | None], RunReport | None]] = {}

    async def report_for(
        self, namespace: str, name: str, run_id: str, ended: datetime | None = None
    ) -> RunReport | None:
        """The report of finished run ``run_id`` (that ended at ``ended``); None when the run left none (it failed
        before writing it)."""
        cached = self._cache.get((namespace, name))
        if cached is not None and cached[0] == (run_id, ended):
            return cached[1]
        report = await asyncio.to_thread(self.read, namespace, name, run_id)
        self._cache[(namespace, name)] = ((run_id, ended), report)
        return report

    def read(self, namespace: str, name: str, run_id: str) -> RunReport | None:
        """Blocking read (see find_run_report)."""
        return find_run_report(self._download, namespace, name, run_id)

    def keep_only(self, policies: Iterable[tuple[str, str]]) -> None:
        """Drop the cached reports of policies no longer polled (deleted, or moved to another target)."""
        kept = set(policies)
        self._cache = {key: value for key, value in self._cache.items() if key in kept}

    def _download(self, object_name: str) -> RunReport | None:
        self.reads += 1
        try:
            data = self.bucket.blob(object_name).download_as_bytes()
        except gcs_errors.NotFound:
            return None
        try:
            return RunReport.model_validate_json(data)
        except ValidationError as exc:
            raise RunReportError(
                f"gs://{self.bucket.name}/{object_name} is not a valid run report: "
                f"{exc.error_count()} problem(s), first: {_first_problem(exc)}"
            ) from None


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error.get("loc", ())) or "(document)"
    return f"{where}: {error.get('msg')}"
