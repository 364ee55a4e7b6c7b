"""The fleet benchmark's plumbing (`python -m bench fleet`); its real run is a benchmark, never a test."""

from __future__ import annotations

import pytest

from bench.fleet import FleetBenchConfig, backed_up_vms, parse_args
from vmbackup.model import labels
from vmbackup.model.identifiers import run_hash


def snapshot(instance: str, run: str, status: str = "READY") -> dict[str, object]:
    return {"name": f"{instance}-s", "status": status, "labels": {labels.INSTANCE: instance, labels.RUN: run}}


def test_a_vm_counts_as_backed_up_once_it_has_a_ready_snapshot_of_the_run() -> None:
    run = run_hash("d", "manual__1")
    found = [snapshot("a", run), snapshot("a", run), snapshot("b", run, "UPLOADING"), snapshot("c", "rother")]

    assert backed_up_vms(found, "d", "manual__1") == 1


def test_the_defaults_lower_max_map_length_below_the_fleet() -> None:
    cfg, json_path = parse_args([])

    assert cfg == FleetBenchConfig()
    assert cfg.vms > cfg.max_map_length
    assert json_path is None


def test_a_fleet_of_no_vm_is_refused() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--vms", "0"])
