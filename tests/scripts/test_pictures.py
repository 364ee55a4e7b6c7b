"""The documentation pictures' data: which run is screenshotted, and the timeline's bars from the bench's down intervals."""

from __future__ import annotations

import pytest

from bench.workflow import ScenarioResult
from scripts.pictures import Bar, from_first_stop, shown_run, timeline_bars


def scenario(name: str, down_intervals: list[tuple[str, float, float]]) -> ScenarioResult:
    return ScenarioResult(
        name=name,
        dag_id=f"vmbackup__bench__{name}",
        run_id="manual__1",
        state="success",
        wall_seconds=None,
        downtime_seconds=[up - down for _, down, up in down_intervals],
        calls_by_method={},
        sensor_slot_seconds=0.0,
        sensor_executions=0,
        instances=len(down_intervals),
        down_intervals=down_intervals,
    )


def test_a_run_starts_at_its_first_stop() -> None:
    assert from_first_stop([("vm-2", 84.5, 254.0), ("vm-1", 82.0, 241.0)]) == [
        ("vm-1", 0.0, 159.0),
        ("vm-2", 2.5, 172.0),
    ]


def test_a_run_without_stops_has_no_bars() -> None:
    assert from_first_stop([]) == []


def test_each_one_vm_backup_starts_at_zero_and_the_fleet_run_keeps_its_stagger() -> None:
    scenarios = {
        "ours": scenario("ours", [("ours-vm-2", 40.0, 100.0), ("ours-vm-1", 172.0, 232.5)]),
        "tutorial": scenario("tutorial", [("tutorial-vm-1", 63.0, 187.0)]),
        "ours-3vm": scenario("ours-3vm", [("fleet-vm-02", 83.0, 244.0), ("fleet-vm-01", 82.0, 241.0)]),
    }
    assert timeline_bars(scenarios, vms=3) == [
        Bar("our DAG: ours-vm-1", 0.0, 60.5, "tab:blue"),
        Bar("our DAG: ours-vm-2", 0.0, 60.0, "tab:blue"),
        Bar("tutorial flow: tutorial-vm-1", 0.0, 124.0, "tab:orange"),
        Bar("our DAG, 3 VMs in one policy: fleet-vm-01", 0.0, 159.0, "tab:green"),
        Bar("our DAG, 3 VMs in one policy: fleet-vm-02", 1.0, 162.0, "tab:green"),
    ]


def test_a_bar_is_as_long_as_the_vm_was_down() -> None:
    assert Bar("our DAG: vm", 2.5, 62.9, "tab:blue").seconds == pytest.approx(60.4)


def test_the_screenshot_shows_the_last_successful_run() -> None:
    runs = [
        {"dag_run_id": "a", "state": "success", "end_date": "2026-12-02T09:00:00Z"},
        {"dag_run_id": "b", "state": "success", "end_date": "2026-12-02T09:05:00Z"},
        {"dag_run_id": "c", "state": "failed", "end_date": "2026-12-02T09:10:00Z"},
    ]
    assert shown_run(runs) == "b"


def test_without_a_successful_run_the_screenshot_shows_the_last_run() -> None:
    runs: list[dict[str, object]] = [
        {"dag_run_id": "a", "state": "failed", "end_date": "2026-12-02T09:00:00Z"},
        {"dag_run_id": "b", "state": "running", "start_date": "2026-12-02T09:05:00Z", "end_date": None},
    ]
    assert shown_run(runs) == "b"
