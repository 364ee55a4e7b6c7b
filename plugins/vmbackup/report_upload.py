"""Writes a report (run or restore) as JSON to the Composer bucket, where the controller reads it.

The one writer for both workflows; without a bucket (AirflowSettings.report_bucket) it only warns, since
the report is also the report task's return value.
"""

from __future__ import annotations

import json
import logging

from vmbackup.model.report import ReportModel
from vmbackup.settings import AirflowSettings

log = logging.getLogger(__name__)


def upload_report(report: ReportModel, object_names: list[str], what: str) -> None:
    """Write `report` to each object (same bytes in each); `what` names it in the logs."""
    bucket_name = AirflowSettings.from_env().report_bucket
    if not bucket_name:
        log.warning("GCS_BUCKET is not set: the %s is not uploaded (it is still the task's return value)", what)
        return
    from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]

    text = json.dumps(report.model_dump(mode="json", by_alias=True), indent=2, sort_keys=True)
    bucket = storage.Client().bucket(bucket_name)
    for name in object_names:
        bucket.blob(name).upload_from_string(text, content_type="application/json")
        log.info("%s written to gs://%s/%s", what, bucket_name, name)
