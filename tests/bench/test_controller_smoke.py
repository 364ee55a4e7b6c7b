"""The controller benchmark's plumbing, so `python -m bench controller` cannot rot. No timing is asserted here.

A tiny run (5 policies, 3 changes) goes through every phase with the real parts: kmock, the storage
emulator, the session's Airflow 3 behind the counting proxy, and `python -m controller` processes.
"""

from __future__ import annotations

import math

from bench.controller import AirflowEndpoint, CycleCount, Options, Results, render_table, run
from tests.fixtures.airflow_api import AirflowServer


def test_a_tiny_run_measures_every_figure_of_the_table(airflow3_api: AirflowServer) -> None:
    airflow = AirflowEndpoint(
        airflow3_api.base_url, airflow3_api.username, airflow3_api.password, airflow3_api.auth_mode
    )

    # A loaded machine may take longer than the table's 30 s to show a change: plumbing, not speed, is tested here.
    options = Options(policies=5, changes=3, poll_interval=2.0, cycles=2, change_deadline=300)
    results = run(options, airflow, echo=lambda line: None)

    assert len(results.latencies) == 3
    assert results.missed_changes == 0
    assert results.restart_dag_uploads == 0
    assert results.restart_rewritten_objects == 0
    assert results.cycles_small
    assert results.cycles_large
    assert any(cycle.poll > 0 for cycle in results.cycles_large)  # a late sample may split one cycle in two
    # Airflow never loads these DAGs (its folder is not fed): that must cost no per-policy requests.
    assert all(cycle.pause == 0 for cycle in results.cycles_large)
    figures = [results.apply_seconds, results.peak_rss_mib, results.restart_settle_seconds]
    assert not any(math.isnan(value) for value in figures)
    assert "nan" not in render_table(results)


def test_a_missed_goal_is_printed_as_missed() -> None:
    results = Results(policies=1000, poll_interval=15, changes=2, restart_dag_uploads=3, restart_rewritten_objects=3)
    results.cycles_small = [CycleCount(poll=3, pause=0, other=0)]
    results.cycles_large = [CycleCount(poll=3, pause=0, other=0)]
    results.latencies = [0.2, 1.5]

    table = render_table(results)

    uploads = next(line for line in table.splitlines() if "DAG uploads" in line)
    p99 = next(line for line in table.splitlines() if "p99" in line)
    assert "MISSED" in uploads
    assert "MISSED" in p99
