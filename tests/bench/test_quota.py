"""The rate-quota benchmark's plumbing (`python -m bench quota`) on a small fleet: its real run is a benchmark."""

from __future__ import annotations

from bench.quota import QuotaBenchConfig, parse_args, quota_floor, run


def test_a_small_fleet_under_binding_quotas_is_backed_up_within_the_budget() -> None:
    quotas = {"zonal_write_requests": 8, "read_requests": 30, "operation_read_requests": 30, "list_requests": 30}
    result = run(QuotaBenchConfig(vms=6, window=1.0, processes=2, project_limit=3, quotas=quotas))
    assert (result.failed, result.left_stopped) == (0, 0)
    assert result.calls_by_group["zonal_write_requests"] == 6 * 5  # lock, stop, cut, start, unlock
    assert all(result.peak_by_group[g] <= quotas[g] for g in quotas if g in result.peak_by_group)
    # Windows are clock-aligned (Google's minute): a run that starts at the end of one window has spent almost none
    # of it, so its wall time can be up to one window under the floor, never more.
    assert result.wall_seconds >= result.floor_seconds - 1.0


def test_the_quota_floor_is_the_busiest_groups_windows() -> None:
    assert quota_floor({"a": 30, "b": 10}, {"a": 10, "b": 10}, 2.0) == 4.0  # 3 windows: 2 waits


def test_the_defaults_are_200_vms_in_two_processes() -> None:
    cfg, repeat, json_path = parse_args([])
    assert (cfg.vms, cfg.processes, cfg.project_limit, repeat, json_path) == (200, 2, 40, 3, None)
