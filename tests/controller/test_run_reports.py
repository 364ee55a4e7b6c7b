"""RunReportReader against the emulated Composer bucket."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.cloud import storage

from controller.run_reports import RunReportError, RunReportReader
from vmbackup.model.report import RunReport, latest_report_object_name, report_object_name


def upload(bucket: storage.Bucket, run_id: str, *, latest: bool, result: str = "succeeded") -> None:
    report = RunReport(
        namespace="default",
        name="wordpress",
        dag_id="vmbackup__default__wordpress",
        run_id=run_id,
        consistency="stop",
        result=result,  # type: ignore[arg-type]
    )
    data = report.model_dump_json(by_alias=True)
    bucket.blob(report_object_name("default", "wordpress", run_id)).upload_from_string(data)
    if latest:
        bucket.blob(latest_report_object_name("default", "wordpress")).upload_from_string(data)


async def test_reads_the_latest_report_of_the_run(gcs_bucket: storage.Bucket) -> None:
    upload(gcs_bucket, "scheduled__2026-11-25T02:00:00+00:00", latest=True)
    report = await RunReportReader(gcs_bucket).report_for(
        "default", "wordpress", "scheduled__2026-11-25T02:00:00+00:00"
    )
    assert report is not None
    assert report.run_id == "scheduled__2026-11-25T02:00:00+00:00"


async def test_falls_back_to_the_runs_own_report_when_latest_is_newer(gcs_bucket: storage.Bucket) -> None:
    upload(gcs_bucket, "manual__1", latest=False)
    upload(gcs_bucket, "manual__2", latest=True)
    report = await RunReportReader(gcs_bucket).report_for("default", "wordpress", "manual__1")
    assert report is not None
    assert report.run_id == "manual__1"


async def test_run_without_report_is_none(gcs_bucket: storage.Bucket) -> None:
    assert await RunReportReader(gcs_bucket).report_for("default", "wordpress", "manual__9") is None


async def test_a_runs_report_is_read_once(gcs_bucket: storage.Bucket) -> None:
    upload(gcs_bucket, "manual__1", latest=True)
    reader = RunReportReader(gcs_bucket)
    await reader.report_for("default", "wordpress", "manual__1")
    reads = reader.reads
    await reader.report_for("default", "wordpress", "manual__1")
    assert reader.reads == reads


async def test_a_new_run_is_read_again(gcs_bucket: storage.Bucket) -> None:
    upload(gcs_bucket, "manual__1", latest=True)
    reader = RunReportReader(gcs_bucket)
    await reader.report_for("default", "wordpress", "manual__1")
    upload(gcs_bucket, "manual__2", latest=True)
    report = await reader.report_for("default", "wordpress", "manual__2")
    assert report is not None
    assert report.run_id == "manual__2"


async def test_a_slot_run_again_under_the_same_run_id_is_read_again(gcs_bucket: storage.Bucket) -> None:
    """A new Airflow metadata DB (or a deleted DAG) runs a slot again under the same run id; it ends later."""
    slot = "scheduled__2026-11-25T02:00:00+00:00"
    upload(gcs_bucket, slot, latest=True)
    reader = RunReportReader(gcs_bucket)
    await reader.report_for("default", "wordpress", slot, datetime(2026, 11, 25, 2, 5, tzinfo=UTC))
    upload(gcs_bucket, slot, latest=True, result="failed")
    again = await reader.report_for("default", "wordpress", slot, datetime(2026, 11, 25, 9, 1, tzinfo=UTC))
    assert again is not None
    assert again.result == "failed"


async def test_invalid_report_is_named_and_left_in_place(gcs_bucket: storage.Bucket) -> None:
    name = latest_report_object_name("default", "wordpress")
    gcs_bucket.blob(name).upload_from_string('{"runId": "manual__1"}')
    with pytest.raises(RunReportError, match=rf"gs://{gcs_bucket.name}/{name} is not a valid run report"):
        await RunReportReader(gcs_bucket).report_for("default", "wordpress", "manual__1")
    assert gcs_bucket.blob(name).exists()


async def test_the_report_of_a_policy_no_longer_polled_is_not_kept(gcs_bucket: storage.Bucket) -> None:
    upload(gcs_bucket, "manual__1", latest=True)
    reader = RunReportReader(gcs_bucket)
    await reader.report_for("default", "wordpress", "manual__1")
    reader.keep_only([("default", "other")])  # wordpress was deleted
    reads = reader.reads
    await reader.report_for("default", "wordpress", "manual__1")
    assert reader.reads > reads
