"""describe's run report section, from a report as the DAG writes it."""

from __future__ import annotations

from controller.vmbackupctl.reports import report_lines
from vmbackup.backup.preflight import GUEST_FLUSH_FAILED_NOTE
from vmbackup.model.report import InstanceResult, RunReport


def test_a_guest_flush_failure_shows_its_note_under_the_vm() -> None:
    failed = InstanceResult(
        instance="db-1", zone="us-central1-a", error="snapshot failed", note=GUEST_FLUSH_FAILED_NOTE
    )
    report = RunReport(
        namespace="shop",
        name="db",
        dag_id="d",
        run_id="r1",
        consistency="guestFlush",
        result="failed",
        instances=[failed],
    )
    assert report_lines(report)[1:3] == [
        "  db-1 (us-central1-a), error: snapshot failed",
        f"    note: {GUEST_FLUSH_FAILED_NOTE}",
    ]
