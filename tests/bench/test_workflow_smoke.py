"""The workflow benchmark's plumbing, so `python -m bench workflow` cannot rot. No timing is asserted here.

The quick tests measure with the real simulator and read real Airflow-shaped records; the end-to-end run (a
real Airflow, fast profile, 2 VMs) is marked slow.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.workflow import (
    Row,
    ScenarioResult,
    build_rows,
    fewest_running,
    floor_rows,
    instance_downtimes,
    merge_repeats,
    parse_args,
    physical_floor,
    render_table,
    rolling_rows,
    sensor_keys,
    slot_intervals,
    slot_intervals_by_task,
    task_executions,
    wall_repeat_rows,
)
from devstack.gce_simulator import Profile
from tests.fixtures.gce import GCE_PROJECT, GceClients
from tests.fixtures.tools import REPO_ROOT


def test_downtime_is_read_from_the_simulators_stop_and_start_operations(gce_clients: GceClients, gce_sim) -> None:
    zone, name = "us-central1-c", "wordpress-1-vm"
    stop = gce_clients.instances.stop_unary(project=GCE_PROJECT, zone=zone, instance=name)
    gce_clients.zone_operations.wait(project=GCE_PROJECT, zone=zone, operation=stop.name)
    start = gce_clients.instances.start_unary(project=GCE_PROJECT, zone=zone, instance=name)
    gce_clients.zone_operations.wait(project=GCE_PROJECT, zone=zone, operation=start.name)

    downtimes = instance_downtimes(gce_sim.operations(), zone, [name])

    assert len(downtimes) == 1
    assert downtimes[0] > 0


def test_an_instance_that_was_never_stopped_has_no_downtime(gce_sim) -> None:
    assert instance_downtimes(gce_sim.operations(), "us-central1-a", ["web-1"]) == []


def event(event_id: int, when: str, task_id: str, name: str, map_index: int = -1) -> dict[str, object]:
    return {"event_log_id": event_id, "when": when, "task_id": task_id, "event": name, "map_index": map_index}


def test_slot_time_counts_each_execution_of_a_rescheduled_sensor() -> None:
    events = [
        event(1, "2026-01-01T00:00:00Z", "g.wait", "running", 0),
        event(2, "2026-01-01T00:00:02Z", "g.wait", "up_for_reschedule", 0),
        event(3, "2026-01-01T00:00:30Z", "g.wait", "running", 0),
        event(4, "2026-01-01T00:00:31.5Z", "g.wait", "success", 0),
    ]

    assert slot_intervals(events, {("g.wait", 0)}) == [2.0, 1.5]


def test_slot_time_ignores_tasks_that_are_not_sensors() -> None:
    events = [
        event(1, "2026-01-01T00:00:00Z", "stop", "running"),
        event(2, "2026-01-01T00:00:05Z", "stop", "success"),
    ]

    assert slot_intervals(events, {("wait", -1)}) == []


def test_a_deferred_sensor_frees_its_slot_until_it_resumes() -> None:
    events = [
        event(1, "2026-01-01T00:00:00Z", "wait", "running"),
        event(2, "2026-01-01T00:00:01Z", "wait", "deferred"),
        event(3, "2026-01-01T00:01:00Z", "wait", "running"),
        event(4, "2026-01-01T00:01:01Z", "wait", "success"),
    ]

    assert sum(slot_intervals(events, {("wait", -1)})) == 2.0


def test_slot_time_is_told_per_sensor_with_every_map_index_together() -> None:
    events = [
        event(1, "2026-01-01T00:00:00Z", "g.wait_stopped", "running", 0),
        event(2, "2026-01-01T00:00:03Z", "g.wait_stopped", "running", 1),
        event(3, "2026-01-01T00:00:04Z", "g.wait_stopped", "success", 0),
        event(4, "2026-01-01T00:00:05Z", "g.wait_stopped", "success", 1),
        event(5, "2026-01-01T00:00:06Z", "g.wait_started", "running", 0),
        event(6, "2026-01-01T00:00:07Z", "g.wait_started", "success", 0),
    ]
    keys = {("g.wait_stopped", 0), ("g.wait_stopped", 1), ("g.wait_started", 0)}

    assert slot_intervals_by_task(events, keys) == {"g.wait_stopped": [4.0, 2.0], "g.wait_started": [1.0]}


def backup_of(name: str, downtime: float, wall: float, slots: float, state: str = "success") -> ScenarioResult:
    return ScenarioResult(
        name=name,
        dag_id="d",
        run_id=f"r-{name}",
        state=state,
        wall_seconds=wall,
        downtime_seconds=[downtime],
        calls_by_method={"instances.get": 4},
        sensor_slot_seconds=slots,
        sensor_executions=2,
        instances=1,
        slot_seconds_by_sensor={"g.wait_stopped": slots},
    )


def test_repeated_backups_are_averaged_per_backup() -> None:
    merged = merge_repeats("ours", [backup_of("a", 30, 70, 4), backup_of("b", 40, 90, 6), backup_of("c", 35, 80, 5)])
    assert merged.mean_downtime == 35
    assert merged.slot_seconds_per_backup == 5
    assert merged.calls_per_backup == 4
    assert merged.wall_seconds == 80  # the median
    assert merged.slot_seconds_by_sensor == {"g.wait_stopped": 15}


def test_one_failed_backup_fails_the_merged_scenario() -> None:
    merged = merge_repeats("ours", [backup_of("a", 30, 70, 4), backup_of("b", 40, 90, 6, state="failed")])
    assert merged.state == "failed"


def test_waiting_tasks_are_recognised_by_their_operator_class() -> None:
    task_instances = [
        {"task_id": "g.stop", "map_index": 0, "operator": "StopInstanceOperator"},
        {"task_id": "g.wait_stopped", "map_index": 0, "operator": "OperationStatusSensor"},
        {"task_id": "g.wait_started", "map_index": 1, "operator": "InstanceStartedSensor"},
        {"task_id": "h.down_window", "map_index": 0, "operator": "DownWindowOperator"},
    ]

    assert sensor_keys(task_instances) == {("g.wait_stopped", 0), ("g.wait_started", 1), ("h.down_window", 0)}


def scenario(name: str, downtime: float, slots: float, wall: float, instances: int = 1) -> ScenarioResult:
    return ScenarioResult(
        name=name,
        dag_id=name,
        run_id="r",
        state="success",
        wall_seconds=wall,
        downtime_seconds=[downtime] * instances,
        calls_by_method={"instances.get": 4 * instances},
        sensor_slot_seconds=slots * instances,
        sensor_executions=3,
        instances=instances,
    )


def test_the_table_has_ratios_goals_and_verdicts() -> None:
    rows = build_rows(
        {
            "ours": scenario("ours", downtime=40, slots=3, wall=100),
            "tutorial": scenario("tutorial", downtime=100, slots=60, wall=150),
            "ours-20vm": scenario("ours-20vm", downtime=45, slots=3, wall=200, instances=20),
        },
        vms=20,
    )

    table = render_table(rows)

    assert (
        "| VM downtime per backup (s), as deployed here (deferrable, standard snapshots) | 40.0 (our DAG) "
        "| 100.0 (tutorial flow) "
        "| 0.40x | <= 0.5x | met |" in table
    )
    assert "| 0.05x | <= 0.1x | met |" in table
    assert "| wall time, 20 VMs vs 1 VM (s) | 200.0 (20 VMs) | 100.0 (1 VM) | 2.00x | <= 1.5x | MISSED |" in table


def test_instant_snapshots_are_held_to_their_own_downtime_goal() -> None:
    rows = build_rows(
        {
            "ours": scenario("ours", downtime=40, slots=3, wall=100),
            "ours-instant": scenario("ours-instant", downtime=30, slots=3, wall=100),
            "tutorial": scenario("tutorial", downtime=100, slots=60, wall=150),
        },
        vms=20,
        method="both",
    )

    table = render_table(rows)

    assert (
        "| VM downtime per backup (s), instant snapshots (deferrable) | 30.0 (our DAG, instant) "
        "| 100.0 (tutorial flow) | 0.30x | <= 0.4x | met |" in table
    )


def test_the_snapshot_method_is_a_bench_option() -> None:
    assert parse_args([])[0].method == "standard"
    assert parse_args(["--method", "instant"])[0].method == "instant"
    assert parse_args(["--method", "both"])[0].method == "both"


def test_a_row_without_a_baseline_is_not_measured_rather_than_met() -> None:
    assert Row("x", 1.0, None, "a", "b", 0.5).verdict == "NOT MEASURED"


def test_a_zero_time_scale_is_refused_with_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--time-scale", "0"])

    assert "--time-scale must be > 0" in capsys.readouterr().err


def test_the_poke_interval_follows_the_time_scale_unless_given() -> None:
    assert parse_args(["--time-scale", "0.5"])[0].poke_seconds == 15.0
    assert parse_args(["--time-scale", "0.5", "--poke-interval", "2"])[0].poke_seconds == 2.0


def test_the_tutorial_flow_is_one_sequential_chain_of_poke_mode_sensors(tmp_path: Path) -> None:
    pytest.importorskip("airflow")
    from bench.tutorial_dag import build_tutorial_dag
    from bench.workflow import policy_for

    dag = build_tutorial_dag(policy_for("tutorial-vm", ["tutorial-vm-1"]).to_json())

    chain = ["stop", "wait_stopped", "snapshot", "wait_snapshot_ready", "start", "wait_started"]
    for upstream, downstream in itertools.pairwise(chain):
        assert f"backup.{downstream}" in dag.get_task(f"backup.{upstream}").downstream_task_ids
    assert {dag.get_task(f"backup.{t}").mode for t in chain if t.startswith("wait")} == {"poke"}


def test_the_dag_processor_finds_the_written_tutorial_dag(tmp_path: Path) -> None:
    dagbag = pytest.importorskip("airflow.dag_processing.dagbag", reason="Airflow 3's DagBag")

    from bench.tutorial_dag import write_tutorial_dag
    from bench.workflow import policy_for

    dag_id = write_tutorial_dag(tmp_path, policy_for("tutorial-vm", ["tutorial-vm-1"]))
    bag = dagbag.DagBag(dag_folder=tmp_path, safe_mode=True)

    assert bag.import_errors == {}
    assert dag_id in bag.dag_ids


@pytest.mark.slow
def test_the_whole_bench_runs_end_to_end_on_the_fast_profile(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "workflow",
            "--profile",
            "fast",
            "--vms",
            "2",
            "--poke-interval",
            "1",
            "--no-reschedule",
            "--repeat",
            "2",
            "--fleet-repeat",
            "2",
            "--method",
            "both",
            "--json",
            str(out),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )

    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| VM downtime per backup (s), as deployed here (deferrable, standard snapshots) |" in proc.stdout
    assert "| VM downtime per backup (s), instant snapshots (deferrable) |" in proc.stdout
    result = json.loads(out.read_text())
    assert result["wait_mode"] == "deferrable"  # LocalAirflow runs a triggerer, as `airflow standalone` does
    assert {s["state"] for s in result["scenarios"].values()} == {"success"}
    assert all(row["ours"] is not None and row["baseline"] is not None for row in result["rows"])
    assert result["scenarios"]["ours"]["instances"] == 2  # --repeat 2: two 1-VM backups, averaged
    assert [r["metric"] for r in result["rows"] if "repeat" in r["metric"]] == [
        "wall time, 2 VMs vs 1 VM (s), repeat 1",
        "wall time, 2 VMs vs 1 VM (s), repeat 2",
    ]


def test_the_physical_floor_is_stop_cut_and_start_with_their_pending_waits() -> None:
    profile = Profile.realistic(time_scale=0.5)

    floor = physical_floor(profile)

    assert floor == pytest.approx(0.5 * (30 + 10 + 20 + 2 * 1))


def test_the_instant_floor_waits_for_the_instant_snapshot_instead_of_creating() -> None:
    profile = Profile.realistic(time_scale=1.0)

    gap = physical_floor(profile) - physical_floor(profile, "instant")

    assert gap == pytest.approx(profile.snapshot_creating_seconds - profile.instant_snapshot_creating_seconds)


def test_the_fleet_is_judged_against_the_floor_by_its_mean_and_its_worst_vm() -> None:
    fleet = backup_of("fleet", 30, 100, 4)
    fleet.downtime_seconds = [33.0, 36.0]

    rows = {r.metric: r for r in floor_rows(backup_of("one", 30, 60, 2), fleet, 2, 30.0)}

    assert rows["VM downtime vs the physical floor (s), mean of the 2-VM run"].ratio == pytest.approx(1.15)
    assert rows["VM downtime vs the physical floor (s), worst VM of the 2-VM run"].verdict == "met"


def test_each_fleet_repeat_gets_its_own_wall_time_ratio() -> None:
    one = backup_of("one", 30, 60, 2)
    repeats = [backup_of("a", 30, 80, 2), backup_of("b", 30, 100, 2)]

    rows = wall_repeat_rows(repeats, one, 20)

    assert [r.verdict for r in rows] == ["met", "MISSED"]


def at(second: int) -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=second)


def test_a_tier_backed_up_one_vm_at_a_time_keeps_all_but_one_running() -> None:
    intervals = [("a", at(0), at(30)), ("b", at(30), at(60)), ("c", at(60), at(90))]

    assert fewest_running(intervals, 3) == 2


def test_overlapping_down_intervals_lower_the_fewest_running() -> None:
    intervals = [("a", at(0), at(30)), ("b", at(10), at(40)), ("c", at(60), at(90))]

    assert fewest_running(intervals, 3) == 1


def test_task_executions_count_every_run_of_a_task_instance() -> None:
    events = [
        event(1, "2026-01-01T00:00:00Z", "g.wait", "running", 0),
        event(2, "2026-01-01T00:00:02Z", "g.wait", "deferred", 0),
        event(3, "2026-01-01T00:00:30Z", "g.wait", "running", 0),
        event(4, "2026-01-01T00:00:31Z", "g.wait", "success", 0),
    ]

    assert task_executions(events) == 2


def test_a_rolling_tier_that_kept_two_of_three_running_meets_its_goal() -> None:
    rolling = scenario("ours-rolling-3vm", downtime=30, slots=1, wall=120, instances=3)
    rolling.down_intervals = [("a", 0.0, 30.0), ("b", 30.0, 60.0), ("c", 61.0, 90.0)]
    (row,) = rolling_rows(rolling)
    assert (row.ours, row.baseline, row.verdict) == (2.0, 2.0, "met")
    assert "| >= 1x | met |" in render_table([row])


def test_a_rolling_tier_with_two_down_at_once_misses_its_goal() -> None:
    rolling = scenario("ours-rolling-3vm", downtime=30, slots=1, wall=120, instances=3)
    rolling.down_intervals = [("a", 0.0, 30.0), ("b", 10.0, 40.0), ("c", 61.0, 90.0)]
    (row,) = rolling_rows(rolling)
    assert (row.ours, row.verdict) == (1.0, "MISSED")
