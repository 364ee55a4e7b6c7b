"""PolicyRunStatus: what Airflow and the run report say, expressed as the status contract."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from controller.airflow_api import DagInfo, DagRunInfo, ImportErrorInfo
from controller.airflow_link import observation_of
from controller.run_status import PolicyRunStatus
from controller.status import PolicyState, suspended_condition
from tests.controller.conftest import written
from vmbackup.model.report import DiskResult, InstanceResult, RunReport, StepError

DAG_ID = "vmbackup__default__wordpress"
START = datetime(2026, 11, 25, 2, 0, 3, tzinfo=UTC)
END = datetime(2026, 11, 25, 2, 0, 41, tzinfo=UTC)
NEXT = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
# What the spec asks, to show that Airflow's answer about the DAG decides Suspended when it has one.
ACTIVE_SPEC = PolicyState("default", "wordpress", DAG_ID, outcome="Uploaded", suspend=False)
SUSPENDED_SPEC = PolicyState("default", "wordpress", DAG_ID, outcome="Uploaded", suspend=True)


def dag(*, paused: bool = False, import_errors: bool = False) -> DagInfo:
    return DagInfo(
        dag_id=DAG_ID,
        is_paused=paused,
        has_import_errors=import_errors,
        fileloc=f"/home/airflow/gcs/dags/{DAG_ID}.py",
        next_run=NEXT,
        last_parsed_time=START,
    )


def run(state: str, run_id: str = "scheduled__2026-11-25T02:00:00+00:00") -> DagRunInfo:
    finished = state in ("success", "failed")
    return DagRunInfo(
        dag_id=DAG_ID,
        run_id=run_id,
        state=state,
        run_type="scheduled",
        queued_at=START,
        start_date=START if state != "queued" else None,
        end_date=END if finished else None,
    )


def report(run_id: str, *, failed: bool = False) -> RunReport:
    disk = DiskResult(disk="wordpress-1-vm", zone="us-central1-c", snapshot="wordpress-1-vm-20261125-0200-3f9a1c2b")
    return RunReport(
        namespace="default",
        name="wordpress",
        dag_id=DAG_ID,
        run_id=run_id,
        consistency="stop",
        result="failed" if failed else "succeeded",
        started_at=START,
        finished_at=END,
        instances=[
            InstanceResult(
                instance="wordpress-1-vm",
                zone="us-central1-c",
                disks=[disk.model_copy(update={"state": "FAILED" if failed else "READY"})],
            )
        ],
        errors=[StepError(step="tier_web.snapshot", instance="wordpress-1-vm", message="quota exceeded")]
        if failed
        else [],
    )


def status(**kwargs: Any) -> PolicyRunStatus:
    return PolicyRunStatus("default", "wordpress", DAG_ID, **kwargs)


def condition_of(poll: PolicyRunStatus, type_: str) -> dict[str, str] | None:
    return next((dataclasses.asdict(c) for c in poll.conditions() if c.type == type_), None)


def test_succeeded_run_with_report_gives_snapshot_names_and_time() -> None:
    latest = run("success")
    poll = status(dag=dag(), run=latest, report=report(latest.run_id))
    fields = written(poll)
    assert fields["result"] == "Succeeded"
    assert fields["lastSnapshots"] == ["wordpress-1-vm-20261125-0200-3f9a1c2b"]
    assert fields["lastSnapshotTime"] == "2026-11-25T02:00:41Z"
    assert condition_of(poll, "LastBackupSucceeded") == {
        "type": "LastBackupSucceeded",
        "status": "True",
        "reason": "RunSucceeded",
        "message": f"run {latest.run_id}: 1 snapshot created",
    }


def test_last_run_follows_the_contract_shape() -> None:
    latest = run("success")
    poll = status(dag=dag(), run=latest, report=report(latest.run_id))
    fields = written(poll)
    assert fields["lastRun"] == {
        "runId": latest.run_id,
        "state": "success",
        "startTime": "2026-11-25T02:00:03Z",
        "endTime": "2026-11-25T02:00:41Z",
        "durationSeconds": 38.0,
        "failedStep": None,
        "message": "1 snapshot created",
    }


def test_succeeded_run_without_report_keeps_previous_snapshot_names() -> None:
    poll = status(dag=dag(), run=run("success"))
    fields = written(poll)
    assert fields["lastSnapshotTime"] == "2026-11-25T02:00:41Z"
    assert "lastSnapshots" not in fields


def test_next_run_is_the_schedules_next_start() -> None:
    assert written(status(dag=dag(), run=run("success")))["nextRun"] == "2026-11-26T02:00:00Z"


def test_failed_run_names_the_step_from_the_report() -> None:
    latest = run("failed")
    poll = status(
        dag=dag(),
        run=latest,
        report=report(latest.run_id, failed=True),
        failed_step="tier_web.snapshot",
        failure_message="tier_web.snapshot failed for wordpress-1-vm: quota exceeded",
    )
    fields = written(poll)
    assert fields["result"] == "Failed"
    assert fields["lastRun"]["failedStep"] == "tier_web.snapshot"
    assert fields["lastRun"]["message"] == "tier_web.snapshot failed for wordpress-1-vm: quota exceeded"
    assert condition_of(poll, "LastBackupSucceeded") == {
        "type": "LastBackupSucceeded",
        "status": "False",
        "reason": "RunFailed",
        "message": f"run {latest.run_id}: tier_web.snapshot failed for wordpress-1-vm: quota exceeded",
    }


def test_failed_run_keeps_the_last_successful_snapshot_fields() -> None:
    poll = status(dag=dag(), run=run("failed"), failed_step="snapshot", failure_message="x")
    fields = written(poll)
    assert "lastSnapshotTime" not in fields
    assert "lastSnapshots" not in fields


def test_running_run_leaves_last_backup_condition_as_it_was() -> None:
    poll = status(dag=dag(), run=run("running"))
    fields = written(poll)
    assert fields["result"] == "Running"
    assert fields["lastRun"]["endTime"] is None
    assert condition_of(poll, "LastBackupSucceeded") is None


def test_queued_run_is_queued() -> None:
    assert status(dag=dag(), run=run("queued")).result == "Queued"


def test_no_run_yet_is_pending() -> None:
    poll = status(dag=dag())
    fields = written(poll)
    assert fields["result"] == "Pending"
    assert fields["lastRun"] is None
    assert condition_of(poll, "LastBackupSucceeded") == {
        "type": "LastBackupSucceeded",
        "status": "Unknown",
        "reason": "NoRunYet",
        "message": "the DAG has not run yet",
    }


def test_paused_dag_is_suspended_without_a_next_run() -> None:
    poll = status(dag=dag(paused=True), run=run("success"))
    fields = written(poll)
    assert fields["result"] == "Suspended"
    assert fields["nextRun"] is None
    assert dataclasses.asdict(suspended_condition(ACTIVE_SPEC, observation_of(poll))) == {
        "type": "Suspended",
        "status": "True",
        "reason": "DagPaused",
        "message": "the DAG is paused in Airflow",
    }


def test_paused_dag_still_shows_a_run_in_progress() -> None:
    assert status(dag=dag(paused=True), run=run("running")).result == "Running"


def test_active_dag_is_not_suspended() -> None:
    assert dataclasses.asdict(suspended_condition(SUSPENDED_SPEC, observation_of(status(dag=dag())))) == {
        "type": "Suspended",
        "status": "False",
        "reason": "DagActive",
        "message": "the DAG is scheduled in Airflow",
    }


def test_import_error_carries_the_end_of_airflows_traceback() -> None:
    trace = "Traceback (most recent call last):\n" + "  frame\n" * 500 + "ImportError: policy JSON is not valid"
    error = ImportErrorInfo(filename=f"{DAG_ID}.py", stack_trace=trace, timestamp=START)
    poll = status(import_error=error)
    found = condition_of(poll, "DagImportError")
    assert found is not None
    assert found["status"] == "True"
    assert found["reason"] == "ImportError"
    assert found["message"].endswith("ImportError: policy JSON is not valid")
    assert len(found["message"]) <= 2000
    assert poll.dag_loaded is False


def test_dag_flagged_with_import_errors_without_a_record_still_says_so() -> None:
    found = condition_of(status(dag=dag(import_errors=True)), "DagImportError")
    assert found is not None
    assert (found["status"], found["message"]) == ("True", f"Airflow cannot import /home/airflow/gcs/dags/{DAG_ID}.py")


def test_cleanly_imported_dag_is_loaded() -> None:
    poll = status(dag=dag())
    assert condition_of(poll, "DagImportError") == {
        "type": "DagImportError",
        "status": "False",
        "reason": "Imported",
        "message": "",
    }
    assert poll.dag_loaded is True


def test_dag_airflow_has_not_loaded_yet_is_unknown() -> None:
    poll = status()
    found = condition_of(poll, "DagImportError")
    assert found is not None
    assert (found["status"], found["reason"]) == ("Unknown", "DagNotLoaded")
    assert poll.dag_loaded is False


def test_unreachable_airflow_says_so_and_nothing_else() -> None:
    poll = status(unreachable="cannot reach Airflow at http://airflow:8080: connection refused")
    assert poll.result == "Unknown"
    assert poll.run_fields() is None  # the run fields shown before are kept
    assert [dataclasses.asdict(c) for c in poll.conditions()] == [
        {
            "type": "AirflowReachable",
            "status": "False",
            "reason": "Unreachable",
            "message": "cannot reach Airflow at http://airflow:8080: connection refused",
        }
    ]


def test_reachable_airflow_says_so() -> None:
    assert condition_of(status(dag=dag()), "AirflowReachable") == {
        "type": "AirflowReachable",
        "status": "True",
        "reason": "Reachable",
        "message": "",
    }


def test_unreadable_report_is_mentioned_not_fatal() -> None:
    fields = status(dag=dag(), run=run("success"), report_problem="gs://b/latest.json is not a valid run report")
    assert written(fields)["lastRun"]["message"] == "gs://b/latest.json is not a valid run report"
