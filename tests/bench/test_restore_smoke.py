"""The restore benchmark's plumbing, so `python -m bench restore` cannot rot. No timing is asserted here.

The quick tests compute the floor from a profile and render tables from given samples; the end-to-end run (the
whole local stack on the short Composer profile, one restore and one drill by each path) is marked slow.
"""

from __future__ import annotations

import pytest

from bench.restore import PROFILES, alternating, parse_args, run_profile
from bench.restore_report import (
    FIGURES,
    NONE,
    PATHS,
    PER_RESTORE_DAG,
    SHIPPED_DAG,
    ProfileResult,
    Sample,
    render_table,
    restore_floor,
    table_rows,
)
from devstack.gce_simulator import Profile


def test_the_floor_is_disk_creation_then_instance_start_on_the_profile() -> None:
    profile = Profile.realistic(time_scale=1.0)

    floor = restore_floor(profile, [10, 200])

    # PENDING twice, the larger disk's CREATING and RESTORING, then PROVISIONING and STAGING
    expected = 2 * 1.0 + (15.0 + 0.05 * 200) + 10.0 + 10.0 + 20.0
    assert floor == pytest.approx(expected)


def test_the_floor_scales_with_the_profile() -> None:
    assert restore_floor(Profile.realistic(time_scale=0.5), [10]) == pytest.approx(
        restore_floor(Profile.realistic(time_scale=1.0), [10]) / 2
    )


def both_paths() -> ProfileResult:
    result = ProfileResult("short", {"sync_delay_seconds": 20}, floor_seconds=10.0)
    result.samples = [
        Sample("restore", PER_RESTORE_DAG, 50.0, 60.0, "disks.insert", 80.0, 90.0),
        Sample("restore", PER_RESTORE_DAG, 60.0, 70.0, "disks.insert", 90.0, 95.0),
        Sample("restore", SHIPPED_DAG, 2.0, 10.0, "disks.insert", 30.0, 45.0),
        Sample("restore", SHIPPED_DAG, 3.0, 12.0, "disks.insert", 34.0, 60.0),
        Sample("drill", PER_RESTORE_DAG, 40.0, 50.0, "disks.insert", 70.0, 100.0),
        Sample("drill", SHIPPED_DAG, 4.0, 20.0, "disks.insert", 40.0, 50.0),
    ]
    return result


def row(table: str, start: str) -> str:
    return next(line for line in table.splitlines() if line.startswith(f"| {start}"))


def test_the_table_shows_both_paths_their_spread_the_ratio_and_the_goal() -> None:
    table = render_table(both_paths())

    first = row(table, "restore: apply -> first")
    assert "65.0 s (60.0-70.0, n=2)" in first  # before: the median, min-max and n
    assert "11.0 s (10.0-12.0, n=2)" in first  # now
    assert "5.9x" in first  # old / new, medians of this run
    assert "before MISSED, now met" in first  # the 15 s goal
    floor = row(table, "restore: apply -> RUNNING / floor 10.0 s")
    assert "8.50x (8.00-9.00, n=2)" in floor  # 80 s and 90 s over a 10 s floor
    assert "2.7x" in floor  # 85 s / 32 s


def test_every_figure_of_both_paths_is_a_row_with_two_measured_cells() -> None:
    rows = table_rows(both_paths())

    assert len(rows) == len(FIGURES)
    for _, before, now, ratio, _ in rows:
        assert NONE not in (before, now, ratio)


def test_a_path_left_out_shows_dashes_and_no_ratio() -> None:
    result = both_paths()
    result.samples = [s for s in result.samples if s.path == SHIPPED_DAG]

    for _, before, now, ratio, _ in table_rows(result):
        assert before == NONE
        assert ratio == NONE
        assert now != NONE


def test_the_paths_take_turns_going_first() -> None:
    assert list(alternating(PATHS, 2)) == [(0, PATHS[0]), (0, PATHS[1]), (1, PATHS[1]), (1, PATHS[0])]


def test_the_defaults_are_a_short_profile_and_composers_both_paths_and_as_many_drills_as_restores() -> None:
    args = parse_args([])

    assert args.profile == ["short", "composer"]
    assert args.path == "both"
    assert args.drill_repeat == args.repeat
    assert parse_args(["--no-drill"]).drill_repeat == 0
    assert PROFILES["composer"].sync_delay_seconds == 240
    assert PROFILES["composer"].dag_list_interval_seconds == 300


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.timeout(3600)
def test_a_tiny_run_measures_every_figure_of_both_paths() -> None:
    result = run_profile("short", PATHS, 1, 0.02, 2.0, drill_repeat=1, echo=lambda line: None)

    assert sorted((s.kind, s.path) for s in result.samples) == sorted(
        (kind, path) for kind in ("restore", "drill") for path in PATHS
    )
    for sample in result.samples:
        assert 0 < sample.queued < sample.first_write < sample.running <= sample.done
    assert result.floor_seconds > 0
    for _, before, now, ratio, _ in table_rows(result):
        assert NONE not in (before, now, ratio)
    assert "nan" not in render_table(result)
