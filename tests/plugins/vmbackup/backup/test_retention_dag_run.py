"""Retention through the real prune step of a rendered DAG (dag.test() on real Airflow, the Compute Engine simulator):
a failing policy keeps its last complete run, and `vmbackupctl retention` previews exactly what the step deletes.

The history (a month of runs of db-1, two disks) is seeded into the simulator with past creation times; the run
itself fails at the stop, so it adds no snapshot and the prune step sees exactly the previewed set.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from controller.vmbackupctl.__main__ import main as vmbackupctl
from devstack.gce_simulator import ComputeSimulator, Fault
from tests.plugins.vmbackup.backup.test_dag_run import PROJECT, BackupRun, backup  # noqa: F401 - the fixture
from vmbackup.model import labels as vmlabels
from vmbackup.model.backup_record import describe
from vmbackup.model.instance_config import DiskConfig, InstanceConfig

pytestmark = pytest.mark.airflow

DAY = 86400.0
ZONE = "us-central1-a"
DB = {"instances": [{"name": "db-1", "zone": ZONE}], "consistency": "stop"}
# The complete run 30 days ago, then runs whose data-disk snapshot FAILED (incomplete), newest 2 days ago.
GOOD, PARTIAL = ("rgood", 30), [("rbad1", 20), ("rbad2", 10), ("rbad3", 2)]
BOTH_DISKS = InstanceConfig(
    name="db-1",
    machine_type="n2-standard-4",
    network_interfaces=[],
    tags=[],
    labels={},
    service_accounts=[],
    disks=[DiskConfig(disk=d, device_name=d, boot=d == "db-1", auto_delete=True) for d in ("db-1", "db-1-data")],
)


def seed_history(sim: ComputeSimulator, policy: str) -> None:
    now = time.time()
    for run, days in [GOOD, *PARTIAL]:
        labels = {
            vmlabels.MANAGED_BY: vmlabels.MANAGED_BY_VALUE,
            vmlabels.POLICY_NAMESPACE: "team-a",
            vmlabels.POLICY_NAME: policy,
            vmlabels.INSTANCE: "db-1",
            vmlabels.RUN: run,
        }
        for disk in ("db-1", "db-1-data"):
            status = "FAILED" if disk == "db-1-data" and run != GOOD[0] else "READY"
            description = describe(f"vmbackup team-a/{policy} of db-1/{disk}", BOTH_DISKS)
            sim.add_snapshot(
                PROJECT,
                ZONE,
                disk,
                f"{disk}-{run}",
                created=now - days * DAY,
                labels=labels,
                description=description,
                status=status,
            )
    # Not this policy's: another policy's and a hand-made one, both old enough to expire.
    other = {
        vmlabels.MANAGED_BY: vmlabels.MANAGED_BY_VALUE,
        vmlabels.POLICY_NAMESPACE: "team-a",
        vmlabels.POLICY_NAME: "someone-else",
        vmlabels.INSTANCE: "db-1",
        vmlabels.RUN: "rother",
    }
    sim.add_snapshot(PROJECT, ZONE, "db-1", "db-1-other-policy", created=now - 90 * DAY, labels=other)
    sim.add_snapshot(PROJECT, ZONE, "db-1", "db-1-by-hand", created=now - 90 * DAY, labels={"owner": "alice"})


def preview(sim: ComputeSimulator, policy: str, spec: dict[str, Any], folder: Path) -> list[dict[str, Any]]:
    """`vmbackupctl retention POLICY --spec FILE -o json` against the simulator (no cluster needed with -n)."""
    manifest = folder / f"{policy}.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "vmbackup.dev/v1alpha1",
                "kind": "VMBackupPolicy",
                "metadata": {"name": policy, "namespace": "team-a"},
                "spec": {"project": PROJECT, **spec},
            }
        )
    )
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VMBACKUP_COMPUTE_ENDPOINT", sim.base_url)
        code = vmbackupctl(
            ["retention", policy, "-n", "team-a", "--spec", str(manifest), "-o", "json"], stdout=out, stderr=err
        )
    assert code == 0, err.getvalue()
    return json.loads(out.getvalue())


@pytest.fixture(scope="module")
def failing(backup: Callable[..., BackupRun], tmp_path_factory: pytest.TempPathFactory) -> tuple[BackupRun, list]:  # noqa: F811
    spec = {**DB, "retention": {"maxAgeDays": 7}}
    previewed: list[dict[str, Any]] = []

    def prepare(sim: ComputeSimulator) -> None:
        seed_history(sim, "failing")
        previewed.extend(preview(sim, "failing", spec, tmp_path_factory.mktemp("spec")))
        sim.inject(Fault.backend_error("instances.stop", times=None))

    return backup("failing", spec, prepare), previewed


def deleted_by_the_step(run: BackupRun) -> set[str]:
    return {c["params"].get("snapshot") for c in run.calls_of("snapshots.delete")}


def test_a_failing_policy_keeps_every_snapshot_of_its_last_complete_run(failing: tuple[BackupRun, list]) -> None:
    run, _ = failing
    assert run.state == "failed"
    names = {s["name"] for s in run.snapshots}
    assert {"db-1-rgood", "db-1-data-rgood"} <= names


def test_the_prune_step_deletes_only_expired_snapshots_of_incomplete_runs(failing: tuple[BackupRun, list]) -> None:
    run, _ = failing
    assert deleted_by_the_step(run) == {"db-1-rbad1", "db-1-rbad2"}


def test_the_preview_matches_what_the_prune_step_deleted(failing: tuple[BackupRun, list]) -> None:
    run, previewed = failing
    assert {v["name"] for v in previewed if v["action"] == "delete"} == deleted_by_the_step(run)
    rules = {v["name"]: v["rule"] for v in previewed}
    assert rules["db-1-rgood"] == rules["db-1-data-rgood"] == "keepLastSuccessful"
    assert rules["db-1-data-rbad3"] == "notReady"


def test_prune_never_touches_snapshots_the_policy_did_not_create(failing: tuple[BackupRun, list]) -> None:
    run, previewed = failing
    assert {"db-1-other-policy", "db-1-by-hand"} <= {s["name"] for s in run.snapshots}
    assert not {"db-1-other-policy", "db-1-by-hand"} & {v["name"] for v in previewed}


def seed_daily_runs(sim: ComputeSimulator, policy: str, days: int) -> None:
    """One complete run of wordpress-1-vm a day at 02:00 Berlin time, for `days` days up to yesterday."""
    berlin = ZoneInfo("Europe/Berlin")
    today = datetime.now(berlin).replace(hour=2, minute=0, second=0, microsecond=0)
    for day in range(1, days + 1):
        labels = {
            vmlabels.MANAGED_BY: vmlabels.MANAGED_BY_VALUE,
            vmlabels.POLICY_NAMESPACE: "team-a",
            vmlabels.POLICY_NAME: policy,
            vmlabels.INSTANCE: "wordpress-1-vm",
            vmlabels.RUN: f"r{day}",
        }
        created = (today - timedelta(days=day)).timestamp()
        sim.add_snapshot(PROJECT, "us-central1-c", "wordpress-1-vm", f"wp-{day}", created=created, labels=labels)


@pytest.fixture(scope="module")
def gfs(backup: Callable[..., BackupRun], tmp_path_factory: pytest.TempPathFactory) -> tuple[BackupRun, list]:  # noqa: F811
    spec = {
        "instances": [{"name": "wordpress-1-vm", "zone": "us-central1-c"}],
        "timezone": "Europe/Berlin",
        "retention": {"daily": 7, "weekly": 4, "monthly": 3},
    }
    previewed: list[dict[str, Any]] = []

    def prepare(sim: ComputeSimulator) -> None:
        seed_daily_runs(sim, "gfs", 75)
        previewed.extend(preview(sim, "gfs", spec, tmp_path_factory.mktemp("spec")))
        sim.inject(Fault.backend_error("instances.stop", times=None))

    return backup("gfs", spec, prepare), previewed


def test_gfs_the_preview_matches_what_the_prune_step_deleted(gfs: tuple[BackupRun, list]) -> None:
    run, previewed = gfs
    to_delete = {v["name"] for v in previewed if v["action"] == "delete"}
    assert to_delete == deleted_by_the_step(run)
    assert {s["name"] for s in run.ours()} == {v["name"] for v in previewed if v["action"] == "keep"}


def test_gfs_keeps_seven_days_then_weeks_then_months(gfs: tuple[BackupRun, list]) -> None:
    _, previewed = gfs
    rules = [v["rule"] for v in previewed if v["action"] == "keep"]
    assert rules[:7] == ["daily"] * 7
    assert set(rules[7:]) <= {"weekly", "monthly"}
    assert 7 < len(rules) <= 7 + 4 + 3
