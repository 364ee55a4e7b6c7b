"""The restore benchmark's plumbing, so `python -m bench restore` cannot rot. No timing is asserted here.

The quick tests compute the floor from a profile and render tables from given samples; the end-to-end run (the
whole local stack, no modelled wait, one restore and one drill) is marked slow.
"""

from __future__ import annotations

import pytest

from bench.restore import PROFILES, parse_args, path_taken, run_profile
from bench.restore_report import (
    PATHS,
    PER_RESTORE_DAG,
    SHIPPED_DAG,
    ProfileResult,
    Sample,
    render_table,
    restore_floor,
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


def test_the_table_shows_each_path_its_spread_and_the_goal() -> None:
    result = ProfileResult("short", {"sync_delay_seconds": 20}, floor_seconds=10.0)
    result.samples = [
        Sample("restore", PER_RESTORE_DAG, 60.0, "disks.insert", 80.0, 90.0),
        Sample("restore", PER_RESTORE_DAG, 70.0, "disks.insert", 90.0, 95.0),
        Sample("restore", SHIPPED_DAG, 20.0, "disks.insert", 40.0, 45.0),
    ]

    table = render_table(result)

    first = next(line for line in table.splitlines() if "restore: apply -> first" in line)
    assert "65.0 s (60.0-70.0, n=2)" in first
    assert "MISSED" in first  # 20 s > the 15 s goal
    assert "0.31x" in first  # shipped / today, medians of this run


def test_a_path_this_checkout_does_not_take_is_skipped_with_a_message() -> None:
    other = next(path for path in PATHS if path != path_taken())

    result = run_profile("none", [other], 1, 1.0, 60.0, drill=True, echo=lambda line: None)

    assert not result.samples
    assert result.skipped
    assert "skipped:" in render_table(result)


def test_the_default_profiles_are_a_short_one_and_composers() -> None:
    args = parse_args([])

    assert args.profile == ["short", "composer"]
    assert PROFILES["composer"].sync_delay_seconds == 240
    assert PROFILES["composer"].dag_list_interval_seconds == 300


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.timeout(2400)
def test_a_tiny_run_measures_a_restore_and_a_drill() -> None:
    result = run_profile("none", [path_taken()], 1, 0.02, 2.0, drill=True, echo=lambda line: None)

    kinds = sorted(sample.kind for sample in result.samples)
    assert kinds == ["drill", "restore"]
    for sample in result.samples:
        assert 0 < sample.first_write < sample.running <= sample.done
    assert result.floor_seconds > 0
    assert "nan" not in render_table(result)
