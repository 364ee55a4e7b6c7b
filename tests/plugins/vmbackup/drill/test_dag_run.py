"""Restore drills end to end: a real backup run, then a drill as the controller starts it (a run of the shared
drill DAG whose conf is the policy, signed) with dag.test() on real Airflow against the simulator; the drill report
it writes to the emulated bucket is what the controller reads. A policy's own drill DAG file, as earlier versions
uploaded it, still runs a drill in flight to its end."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from dags_templates.render_drill import SHARED_DRILL_DAG_FILE_ID, render_drill_dag, shared_drill_dag_source
from tests.fixtures.gce import GCE_PROJECT
from tests.fixtures.recovery import ZONE, RecoveryStack
from vmbackup.model.drill import (
    DRILL_LABEL,
    SHARED_DRILL_DAG_ID,
    DrillReport,
    drill_dag_id_for,
    drill_report_object_name,
)
from vmbackup.model.policy import BackupPolicy
from vmbackup.model.run_signature import SIGNING_KEY_ENV, sign_run_conf

pytestmark = pytest.mark.airflow

KEY = "d" * 64

VERIFICATION = {
    "schedule": "0 4 * * 0",
    "network": "drills",
    "subnetwork": "drills-central",
    "networkTags": ["drill-isolated"],
    "guestCheck": {"serialPortRegex": r"login: $", "timeoutSeconds": 30},
}


@pytest.fixture
def stack(gce_sim: Any, gce_clients: Any, gcs_bucket: Any, airflow_dags: Any, monkeypatch: Any) -> RecoveryStack:
    monkeypatch.setenv(SIGNING_KEY_ENV, KEY)
    return RecoveryStack(gce_sim, gce_clients, airflow_dags, gcs_bucket, monkeypatch)


def signed(policy: BackupPolicy, run_id: str, *, key: str = KEY, expires_in: float = 600) -> dict[str, Any]:
    """The conf the controller gives a drill run of this policy."""
    payload, expires_at = policy.to_json(), int(time.time() + expires_in)
    return sign_run_conf(
        key.encode(), dag_id=SHARED_DRILL_DAG_ID, run_id=run_id, payload=payload, expires_at=expires_at
    )


def drill(stack: RecoveryStack, policy: BackupPolicy) -> tuple[str, DrillReport]:
    """One drill through the shared drill DAG, its conf signed as the controller signs it."""
    stack.sim.clear_calls()
    stack.dags.write_dag(SHARED_DRILL_DAG_FILE_ID, shared_drill_dag_source())
    outcome = stack.dags.run_with_conf(SHARED_DRILL_DAG_ID, lambda run_id: signed(policy, run_id))
    assert stack.sim.wait_idle(120)
    return outcome.state, read_report(stack, policy)


def read_report(stack: RecoveryStack, policy: BackupPolicy) -> DrillReport:
    blob = stack.bucket.blob(drill_report_object_name(policy.namespace, policy.name))
    return DrillReport.model_validate(json.loads(blob.download_as_text()))


def drill_resources(stack: RecoveryStack) -> list[str]:
    world = stack.sim.world
    with world.cond:
        found = [i.name for i in world.instances.values() if DRILL_LABEL in i.labels]
        return found + [d.name for d in world.disks.values() if DRILL_LABEL in d.labels]


def calls_on_source(stack: RecoveryStack) -> list[str]:
    touching = {"instances.stop", "instances.start", "instances.setLabels", "instances.delete", "disks.delete"}
    return [
        c["method"]
        for c in stack.sim.calls
        if c["method"] in touching and c["params"].get("instance", c["params"].get("disk", "")).startswith("db-1")
    ]


def test_a_drill_restores_the_newest_run_checks_the_guest_and_deletes_everything(stack: RecoveryStack) -> None:
    policy = stack.policy(verification=VERIFICATION)
    stack.back_up(policy)
    snapshots = sorted(s["name"] for s in stack.sim.snapshots(GCE_PROJECT))

    state, report = drill(stack, policy)

    assert state == "success"
    assert report.result == "Succeeded", report.message
    assert report.dag_id == SHARED_DRILL_DAG_ID
    assert report.source_instance == "db-1"
    assert sorted(report.snapshots) == snapshots
    assert report.boot_seconds is not None
    assert report.boot_seconds > 0
    assert report.guest_check == "serial port 1 matched 'login: $'"
    assert drill_resources(stack) == []
    assert sorted(report.deleted) == sorted([report.drill_instance, f"{report.drill_instance}-db-1-data"])
    assert sorted(s["name"] for s in stack.sim.snapshots(GCE_PROJECT)) == snapshots
    assert calls_on_source(stack) == []
    assert stack.sim.instance(GCE_PROJECT, ZONE, "db-1")["status"] == "RUNNING"


def test_a_drill_of_a_policy_with_a_backup_project_restores_from_it_and_leaves_it_alone(stack: RecoveryStack) -> None:
    policy = stack.policy(verification=VERIFICATION, snapshot={"project": "shop-backups"})
    stack.back_up(policy)
    snapshots = sorted(s["name"] for s in stack.sim.snapshots("shop-backups"))

    state, report = drill(stack, policy)

    assert state == "success"
    assert report.result == "Succeeded", report.message
    assert sorted(report.snapshots) == snapshots
    assert drill_resources(stack) == []
    assert sorted(s["name"] for s in stack.sim.snapshots("shop-backups")) == snapshots
    assert stack.sim.snapshots(GCE_PROJECT) == []


def test_the_drill_vm_is_isolated_and_labelled_as_a_drill(stack: RecoveryStack) -> None:
    policy = stack.policy(verification=VERIFICATION)
    stack.back_up(policy)
    drill(stack, policy)
    # the accepted insert (one refused while a disk was still RESTORING is retried: resourceNotReady)
    [insert] = [c for c in stack.sim.calls if c["method"] == "instances.insert" and c["status"] == 200]
    body = insert["body"]
    [nic] = body["networkInterfaces"]
    assert nic["network"].endswith("/global/networks/drills")
    assert nic["subnetwork"].endswith("/regions/us-central1/subnetworks/drills-central")
    assert not nic.get("accessConfigs")  # no external address
    assert body["tags"]["items"] == ["drill-isolated"]
    assert body["labels"][DRILL_LABEL]
    assert "app" not in body["labels"]  # no source label: no backup selector can pick the drill VM up


def test_a_guest_check_that_never_matches_fails_the_drill_and_still_cleans_up(stack: RecoveryStack) -> None:
    stack.sim.set_guest_console(GCE_PROJECT, ZONE, "db-1", "Kernel panic - not syncing: VFS: Unable to mount root fs\n")
    policy = stack.policy(verification=VERIFICATION)
    stack.back_up(policy)

    state, report = drill(stack, policy)

    assert state == "failed"
    assert report.result == "Failed"
    assert report.failed_step == "guest_check"
    assert report.guest_check == "serial port 1 did not match 'login: $' within 30 s"
    assert report.boot_seconds is not None
    assert drill_resources(stack) == []
    assert len(report.deleted) == 2
    assert calls_on_source(stack) == []


def test_a_policy_without_a_finished_backup_fails_the_drill_naming_the_fix(stack: RecoveryStack) -> None:
    policy = stack.policy(verification=VERIFICATION)

    state, report = drill(stack, policy)

    assert state == "failed"
    assert report.failed_step == "plan"
    assert "run a backup first" in report.message
    assert drill_resources(stack) == []


def test_a_drill_dag_file_of_an_earlier_version_still_runs_its_drill(stack: RecoveryStack) -> None:
    policy = stack.policy(verification=VERIFICATION)
    stack.back_up(policy)
    dag_id = drill_dag_id_for(policy.namespace, policy.name)
    stack.dags.write_dag(dag_id, render_drill_dag(policy))

    outcome = stack.dags.run(dag_id)
    assert stack.sim.wait_idle(120)

    report = read_report(stack, policy)
    assert outcome.state == "success", outcome.task_states
    assert (report.result, report.dag_id) == ("Succeeded", dag_id)
    assert drill_resources(stack) == []
