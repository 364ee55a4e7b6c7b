"""The controller's per-policy metrics: what a finished run's report sets, and what deleting a policy removes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controller.metrics import ControllerMetrics
from controller.schedule_interval import schedule_interval_seconds
from vmbackup.model.report import DiskResult, InstanceResult, RunReport

DAY = 86400.0
SHOP_WEB = {"namespace": "shop", "name": "web"}


def report(*vms: tuple[str, float | None], snapshots: int = 1, pruned: int = 0) -> RunReport:
    at = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    return RunReport(
        namespace="shop",
        name="web",
        dag_id="vmbackup__shop__web",
        run_id="scheduled__2026-11-25T02:00:00+00:00",
        consistency="stop",
        result="succeeded",
        started_at=at,
        finished_at=at,
        instances=[
            InstanceResult(
                instance=vm,
                zone="us-central1-a",
                downtime_seconds=down,
                disks=[
                    DiskResult(disk=f"{vm}-boot-{i}", zone="us-central1-a", snapshot=f"{vm}-s{i}", state="READY")
                    for i in range(snapshots)
                ],
            )
            for vm, down in vms
        ],
        pruned_snapshots=[f"old-{i}" for i in range(pruned)],
    )


def downtime(metrics: ControllerMetrics, vm: str) -> float | None:
    labels = {**SHOP_WEB, "instance": vm, "zone": "us-central1-a"}
    return metrics.registry.get_sample_value("vmbackup_vm_downtime_seconds", labels)


@pytest.mark.parametrize(
    ("schedule", "interval"),
    [
        ("0 2 * * *", DAY),
        ("0 2 * * 1-5", 3 * DAY),  # Friday 02:00 to Monday 02:00
        ("*/15 * * * *", 900.0),
        ("10/25 * * * *", 35 * 60.0),  # :10 and :35, then :10 of the next hour
        ("0 0,12 * * *", DAY / 2),
        ("30 1 1 * *", 31 * DAY),
        ("0 3 1 * mon", 7 * DAY),  # day 1 or a Monday: never more than a week apart
        ("0 0 29 feb *", (366 + 3 * 365) * DAY),
        ("@hourly", 3600.0),
        ("@weekly", 7 * DAY),
    ],
)
def test_schedule_interval_is_the_longest_gap_between_slots(schedule: str, interval: float) -> None:
    assert schedule_interval_seconds(schedule) == interval


def test_a_run_sets_each_vms_downtime_and_the_duration() -> None:
    metrics = ControllerMetrics()

    metrics.record_run("shop", "web", report(("web-1", 41.5), ("web-2", None)), 180.0, count=True)

    assert downtime(metrics, "web-1") == 41.5
    assert downtime(metrics, "web-2") == 0.0
    assert metrics.value("vmbackup_last_run_duration_seconds", SHOP_WEB) == 180.0


def test_the_next_run_replaces_the_vms_of_the_last_one() -> None:
    metrics = ControllerMetrics()
    metrics.record_run("shop", "web", report(("web-1", 41.5), ("web-2", 30.0)), 180.0, count=True)

    metrics.record_run("shop", "web", report(("web-1", 12.0)), 90.0, count=True)

    assert downtime(metrics, "web-1") == 12.0
    assert downtime(metrics, "web-2") is None


def test_snapshots_created_and_pruned_add_up_over_runs() -> None:
    metrics = ControllerMetrics()

    metrics.record_run("shop", "web", report(("web-1", 1.0), snapshots=2, pruned=1), 60.0, count=True)
    metrics.record_run("shop", "web", report(("web-1", 1.0), snapshots=2, pruned=3), 60.0, count=True)

    assert metrics.value("vmbackup_snapshots_created_total", SHOP_WEB) == 4
    assert metrics.value("vmbackup_snapshots_pruned_total", SHOP_WEB) == 4


def test_a_run_announced_before_a_restart_sets_gauges_but_counts_nothing() -> None:
    metrics = ControllerMetrics()

    metrics.record_run("shop", "web", report(("web-1", 41.5), snapshots=2, pruned=1), 60.0, count=False)

    assert downtime(metrics, "web-1") == 41.5
    assert metrics.value("vmbackup_snapshots_created_total", SHOP_WEB) == 0


def test_a_tracked_policy_starts_its_counters_at_zero() -> None:
    metrics = ControllerMetrics()

    metrics.track_policy("shop", "web", DAY, created=1_700_000_000.0)

    assert metrics.registry.get_sample_value("vmbackup_failed_runs_total", SHOP_WEB) == 0.0
    assert metrics.value("vmbackup_schedule_interval_seconds", SHOP_WEB) == DAY
    assert metrics.value("vmbackup_policy_created_timestamp_seconds", SHOP_WEB) == 1_700_000_000.0


def test_a_suspended_policy_exports_no_schedule_interval() -> None:
    metrics = ControllerMetrics()
    metrics.track_policy("shop", "web", DAY, created=None)

    metrics.track_policy("shop", "web", None, created=None)

    assert metrics.registry.get_sample_value("vmbackup_schedule_interval_seconds", SHOP_WEB) is None


def test_forget_policy_removes_every_series_of_that_policy_only() -> None:
    metrics = ControllerMetrics()
    for name in ("web", "db"):
        metrics.track_policy("shop", name, DAY, created=1.0)
        metrics.last_success.labels("shop", name).set(1.0)
        metrics.airflow_reachable.labels("shop", name).set(1)
        metrics.missed_runs.labels("shop", name, "Late").inc()
        metrics.drill_runs.labels("shop", name, "Failed").inc()
        metrics.drill_last_success.labels("shop", name).set(1.0)
        metrics.rpo_seconds.labels("shop", name).set(93600)
        metrics.newest_good_backup.labels("shop", name, f"{name}-1", "us-central1-a").set(1.0)
        metrics.rpo_breached.labels("shop", name, f"{name}-1", "us-central1-a").set(0)
    metrics.record_run("shop", "web", report(("web-1", 5.0)), 60.0, count=True)
    metrics.record_run("shop", "db", report(("db-1", 5.0)), 60.0, count=True)

    metrics.forget_policy("shop", "web")

    families = list(metrics.registry.collect())
    assert not [s for family in families for s in family.samples if s.labels.get("name") == "web"]
    with_db = {family.name for family in families for s in family.samples if s.labels.get("name") == "db"}
    assert with_db == {family.name for metric in metrics.policy_series() for family in metric.describe()}
