"""Restore end to end: rendered restore DAGs run with dag.test() on real Airflow against the Compute Engine simulator.

Backups are seeded as the backup DAG leaves them (snapshots with our labels, one run per label value), through
the simulator's own API; each test then runs one restore and checks one behaviour: what Compute Engine holds
afterwards, the simulator's call log, and the restore report the DAG wrote to the (emulated) Composer bucket.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud import compute_v1

from dags_templates.render_restore import render_restore_dag
from devstack.gce_simulator import ComputeSimulator, Fault
from tests.fixtures.clock_steps import LONG, ended_once, operation_done, operation_read, retaining
from vmbackup.model import labels as vmlabels
from vmbackup.model.policy import parse_policy
from vmbackup.model.report import RestoreReport, restore_report_object_name
from vmbackup.model.restore import RESTORE_LABEL, parse_restore

pytestmark = pytest.mark.airflow

PROJECT = "demo-project"
NAMESPACE = "shop"
ZONE = "us-central1-a"
POLICY_SPEC = {"project": PROJECT, "instances": [{"name": "db-1", "zone": ZONE}], "consistency": "none"}
SOURCE_DISKS = ("db-1", "db-1-data")


@dataclass
class RestoreRun:
    state: str
    task_states: dict[str, str]
    report: RestoreReport | None


def seed_run(gce_sim: Any, gce_clients: Any, run: str, *, wait: bool = True) -> list[str]:
    """One backup run of db-1 as the backup DAG leaves it: a labelled snapshot of each disk."""
    names = []
    for disk in SOURCE_DISKS:
        name = f"{disk}-{run}"
        labels = {
            vmlabels.MANAGED_BY: vmlabels.MANAGED_BY_VALUE,
            vmlabels.POLICY_NAMESPACE: NAMESPACE,
            vmlabels.POLICY_NAME: "db",
            vmlabels.RUN: run,
            vmlabels.INSTANCE: "db-1",
            vmlabels.CONSISTENCY: "none",
        }
        op = gce_clients.disks.create_snapshot_unary(
            project=PROJECT, zone=ZONE, disk=disk, snapshot_resource=compute_v1.Snapshot(name=name, labels=labels)
        )
        if wait:
            gce_clients.zone_operations.wait(project=PROJECT, zone=ZONE, operation=op.name)
        names.append(name)
    return names


@pytest.fixture
def restore_env(gce_sim: Any, gcs_bucket: Any, airflow_dags: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("VMBACKUP_COMPUTE_ENDPOINT", gce_sim.base_url)
    monkeypatch.setenv("VMBACKUP_POKE_INTERVAL_SECONDS", "0.2")
    monkeypatch.setenv("VMBACKUP_RETRY_DELAY_SECONDS", "0")
    monkeypatch.setenv("VMBACKUP_RETRY_BASE_SECONDS", "0.01")
    monkeypatch.setenv("GCS_BUCKET", gcs_bucket.name)

    def run(name: str = "db-restored", wait_mode: str = "reschedule", **spec: Any) -> RestoreRun:
        policy = parse_policy(NAMESPACE, "db", POLICY_SPEC)
        restore = parse_restore(NAMESPACE, name, {"policyName": "db", **spec}, policy)
        restore = restore.model_copy(update={"wait_mode": wait_mode})
        airflow_dags.write_dag(restore.dag_id, render_restore_dag(restore))
        outcome = airflow_dags.run(restore.dag_id)
        blob = gcs_bucket.blob(restore_report_object_name(NAMESPACE, name))
        report = RestoreReport.model_validate(json.loads(blob.download_as_text())) if blob.exists() else None
        return RestoreRun(outcome.state, outcome.task_states, report)

    return run


def disk_or_none(gce_clients: Any, name: str) -> Any:
    try:
        return gce_clients.disks.get(project=PROJECT, zone=ZONE, disk=name)
    except gexc.NotFound:
        return None


def test_the_newest_ready_run_is_restored_as_a_new_vm(restore_env: Any, gce_sim: Any, gce_clients: Any) -> None:
    seed_run(gce_sim, gce_clients, "rold")
    newest = seed_run(gce_sim, gce_clients, "rnew")

    run = restore_env()

    assert run.state == "success", run.task_states
    vm = gce_sim.instance(PROJECT, ZONE, "db-restored")
    assert vm["status"] == "RUNNING"
    sources = {d["deviceName"]: gce_sim.disk(PROJECT, ZONE, d["source"].rsplit("/", 1)[-1]) for d in vm["disks"]}
    assert {name: disk["sourceSnapshot"].rsplit("/", 1)[-1] for name, disk in sources.items()} == {
        "persistent-disk-0": newest[0],
        "data": newest[1],
    }
    assert [d["boot"] for d in vm["disks"]] == [True, False]


def insert_running_until_looked_at(gce_sim: ComputeSimulator, name: str) -> AbstractContextManager[None]:
    """Around a restore: the new VM's insert runs until the sensor has had its first look at it (a
    zoneOperations.get) and a wait on it is parked (the trigger's long-poll), however slow the machine: that look
    finds it running, so the sensor defers. The test sets the profile (clock_steps.retaining) before anything, so
    that the step to its end purges no operation."""
    gce_sim.inject(Fault.slow("instances.insert", LONG))
    vm = f"instances/{name}"

    def deferred() -> bool:
        return operation_read(gce_sim, "insert", vm, "zoneOperations.get") and gce_sim.blocked_waits() > 0

    return ended_once(gce_sim, deferred, lambda: operation_done(gce_sim, "insert", vm), f"the insert of {name} DONE")


def test_a_restore_rendered_for_a_triggerer_waits_in_it(restore_env: Any, gce_sim: Any, gce_clients: Any) -> None:
    gce_sim.set_profile(retaining())
    seed_run(gce_sim, gce_clients, "r1")
    gce_sim.clear_calls()

    with insert_running_until_looked_at(gce_sim, "db-deferred"):
        run = restore_env("db-deferred", wait_mode="deferrable")

    assert run.state == "success", run.task_states
    assert gce_clients.instances.get(project=PROJECT, zone=ZONE, instance="db-deferred").status == "RUNNING"
    (insert,) = [
        op["name"]
        for op in gce_sim.operations()
        if op["operationType"] == "insert" and op.get("targetLink", "").endswith("/instances/db-deferred")
    ]
    on_insert = [c["method"] for c in gce_sim.calls if c["params"].get("operation") == insert]
    assert on_insert[:1] == ["zoneOperations.get"]  # the sensor looked once, then deferred to the trigger
    assert "zoneOperations.wait" in on_insert[1:]


def test_the_new_vm_copies_the_source_vm_config(restore_env: Any, gce_sim: Any, gce_clients: Any) -> None:
    seed_run(gce_sim, gce_clients, "rone")
    source = gce_sim.instance(PROJECT, ZONE, "db-1")

    restore_env()

    vm = gce_sim.instance(PROJECT, ZONE, "db-restored")
    assert vm["machineType"].endswith("/machineTypes/n2-standard-4")
    assert vm["tags"]["items"] == source["tags"]["items"]
    assert vm["serviceAccounts"] == source["serviceAccounts"]
    assert vm["networkInterfaces"][0]["network"] == source["networkInterfaces"][0]["network"]
    assert vm["labels"] == {**source["labels"], RESTORE_LABEL: f"{NAMESPACE}_db-restored"}


def test_the_report_names_the_snapshots_disks_and_instance(restore_env: Any, gce_sim: Any, gce_clients: Any) -> None:
    snapshots = seed_run(gce_sim, gce_clients, "rone")

    report = restore_env().report

    assert report is not None
    assert report.phase == "Succeeded"
    assert (report.instance, report.zone, report.snapshot_run) == ("db-restored", ZONE, "rone")
    assert report.snapshots == snapshots  # the boot disk's first
    assert sorted(report.created_disks) == ["db-restored", "db-restored-db-1-data"]


def test_overrides_replace_what_is_copied(restore_env: Any, gce_sim: Any, gce_clients: Any) -> None:
    seed_run(gce_sim, gce_clients, "rone")

    restore_env(
        targetName="db-2",
        overrides={"machineType": "e2-standard-2", "networkTags": ["db"], "labels": {"env": "test"}},
    )

    vm = gce_sim.instance(PROJECT, ZONE, "db-2")
    assert vm["machineType"].endswith("/machineTypes/e2-standard-2")
    assert vm["tags"]["items"] == ["db"]
    assert vm["labels"] == {"env": "test", RESTORE_LABEL: f"{NAMESPACE}_db-restored"}


def test_a_named_snapshot_restores_its_own_run(restore_env: Any, gce_sim: Any, gce_clients: Any) -> None:
    older = seed_run(gce_sim, gce_clients, "rold")
    seed_run(gce_sim, gce_clients, "rnew")

    run = restore_env(snapshot=older[1])

    assert run.state == "success", run.task_states
    assert run.report is not None
    assert (run.report.snapshot_run, run.report.snapshots) == ("rold", older)
    data = gce_sim.disk(PROJECT, ZONE, "db-restored-db-1-data")
    assert data["sourceSnapshot"].endswith(f"/snapshots/{older[1]}")


def test_a_snapshot_that_does_not_exist_fails_with_a_clear_error(
    restore_env: Any, gce_sim: Any, gce_clients: Any
) -> None:
    seed_run(gce_sim, gce_clients, "rone")

    run = restore_env(snapshot="db-1-nosuch")

    assert run.state == "failed"
    assert run.report is not None
    assert run.report.phase == "Failed"
    assert run.report.failed_step == "resolve"
    assert "snapshot db-1-nosuch does not exist in project demo-project" in (run.report.message or "")
    assert gce_sim.call_counts().get("disks.insert", 0) == 0


def test_a_snapshot_that_is_not_ready_fails_with_a_clear_error(
    restore_env: Any, gce_sim: Any, gce_clients: Any
) -> None:
    gce_sim.inject(Fault.slow("disks.createSnapshot", 600, times=None))
    uploading = seed_run(gce_sim, gce_clients, "rone", wait=False)

    run = restore_env(snapshot=uploading[0])

    assert run.state == "failed"
    assert run.report is not None
    assert f"snapshot {uploading[0]} is CREATING, not READY" in (run.report.message or "")
    assert gce_sim.call_counts().get("disks.insert", 0) == 0


def test_no_ready_run_fails_with_a_clear_error(restore_env: Any, gce_sim: Any) -> None:
    run = restore_env()

    assert run.state == "failed"
    assert run.report is not None
    assert "no READY snapshot of policy shop/db for instance db-1" in (run.report.message or "")


def test_a_target_name_already_taken_fails_and_leaves_that_vm_alone(
    restore_env: Any, gce_sim: Any, gce_clients: Any
) -> None:
    seed_run(gce_sim, gce_clients, "rone")
    before = gce_sim.instance(PROJECT, ZONE, "app-1")

    run = restore_env(targetName="app-1")

    assert run.state == "failed"
    assert run.report is not None
    assert "instance app-1 already exists in zone us-central1-a" in (run.report.message or "")
    assert gce_sim.instance(PROJECT, ZONE, "app-1") == before
    assert gce_sim.call_counts().get("disks.insert", 0) == 0


def test_a_fault_creating_the_instance_deletes_the_created_disks(
    restore_env: Any, gce_sim: Any, gce_clients: Any
) -> None:
    seed_run(gce_sim, gce_clients, "rone")
    gce_sim.inject(Fault.operation_error("instances.insert", "QUOTA_EXCEEDED", "Quota 'CPUS' exceeded.", times=None))

    run = restore_env()

    assert run.state == "failed"
    assert run.report is not None
    assert "Quota 'CPUS' exceeded." in (run.report.message or "")
    assert sorted(run.report.deleted_disks) == ["db-restored", "db-restored-db-1-data"]
    assert disk_or_none(gce_clients, "db-restored") is None
    assert disk_or_none(gce_clients, "db-restored-db-1-data") is None


def test_a_failed_restore_never_touches_the_source_vm_or_its_snapshots(
    restore_env: Any, gce_sim: Any, gce_clients: Any
) -> None:
    seed_run(gce_sim, gce_clients, "rone")
    source, snapshots = gce_sim.instance(PROJECT, ZONE, "db-1"), gce_sim.snapshots(PROJECT)
    gce_sim.inject(Fault.operation_error("instances.insert", times=None))

    restore_env()

    assert gce_sim.instance(PROJECT, ZONE, "db-1") == source
    assert gce_sim.snapshots(PROJECT) == snapshots
    touched = [c for c in gce_sim.calls if c["http_method"] != "GET" and c["params"].get("instance") == "db-1"]
    assert touched == []


def test_keep_disks_on_failure_keeps_them(restore_env: Any, gce_sim: Any, gce_clients: Any) -> None:
    seed_run(gce_sim, gce_clients, "rone")
    gce_sim.inject(Fault.operation_error("instances.insert", times=None))

    run = restore_env(keepDisksOnFailure=True)

    assert run.state == "failed"
    assert disk_or_none(gce_clients, "db-restored") is not None
    assert run.report is not None
    assert run.report.deleted_disks == []


def test_running_the_same_restore_twice_creates_one_vm(restore_env: Any, gce_sim: Any, gce_clients: Any) -> None:
    seed_run(gce_sim, gce_clients, "rone")
    first = restore_env()

    second = restore_env()

    assert (first.state, second.state) == ("success", "success")
    assert gce_sim.call_counts()["instances.insert"] == 1
    assert second.report is not None
    assert second.report.phase == "Succeeded"


def delete_source_vm(gce_clients: Any) -> None:
    op = gce_clients.instances.delete_unary(project=PROJECT, zone=ZONE, instance="db-1")
    gce_clients.zone_operations.wait(project=PROJECT, zone=ZONE, operation=op.name)


def test_a_vanished_source_vm_needs_its_config_named(restore_env: Any, gce_sim: Any, gce_clients: Any) -> None:
    seed_run(gce_sim, gce_clients, "rone")
    delete_source_vm(gce_clients)

    run = restore_env()

    assert run.state == "failed"
    assert run.report is not None
    assert "spec.overrides.machineType: source instance db-1 no longer exists" in (run.report.message or "")


def test_a_vanished_source_vm_is_restored_from_the_overrides(restore_env: Any, gce_sim: Any, gce_clients: Any) -> None:
    seed_run(gce_sim, gce_clients, "rone")
    delete_source_vm(gce_clients)

    run = restore_env(
        overrides={"machineType": "e2-medium", "networkInterfaces": [{"network": "default"}], "bootDisk": "db-1"}
    )

    assert run.state == "success", run.task_states
    vm = gce_sim.instance(PROJECT, ZONE, "db-restored")
    assert [(d["boot"], d["source"].rsplit("/", 1)[-1]) for d in vm["disks"]] == [
        (True, "db-restored"),
        (False, "db-restored-db-1-data"),
    ]


def test_a_target_zone_in_another_region_needs_a_subnetwork(restore_env: Any, gce_sim: Any, gce_clients: Any) -> None:
    seed_run(gce_sim, gce_clients, "rone")

    run = restore_env(targetZone="europe-west1-b")

    assert run.state == "failed"
    assert run.report is not None
    assert (run.report.message or "").startswith("spec.overrides.networkInterfaces: target zone europe-west1-b")


def insert_disk(gce_clients: Any, name: str, snapshot: str, labels: dict[str, str]) -> None:
    disk = compute_v1.Disk(name=name, source_snapshot=f"global/snapshots/{snapshot}", labels=labels)
    op = gce_clients.disks.insert_unary(project=PROJECT, zone=ZONE, disk_resource=disk)
    gce_clients.zone_operations.wait(project=PROJECT, zone=ZONE, operation=op.name)


def test_a_disk_an_earlier_try_created_is_adopted_not_created_again(
    restore_env: Any, gce_sim: Any, gce_clients: Any
) -> None:
    snapshots = seed_run(gce_sim, gce_clients, "rone")
    insert_disk(gce_clients, "db-restored-db-1-data", snapshots[1], {RESTORE_LABEL: f"{NAMESPACE}_db-restored"})

    run = restore_env()

    assert run.state == "success", run.task_states
    created = [c["params"] for c in gce_sim.calls if c["method"] == "disks.insert" and c["status"] == 200]
    assert len(created) == 2  # the earlier try's and the boot disk: none twice
    assert gce_sim.disk(PROJECT, ZONE, "db-restored-db-1-data")["users"]


def test_a_disk_name_taken_by_someone_else_fails_and_leaves_that_disk_alone(
    restore_env: Any, gce_sim: Any, gce_clients: Any
) -> None:
    snapshots = seed_run(gce_sim, gce_clients, "rone")
    insert_disk(gce_clients, "db-restored-db-1-data", snapshots[1], {"team": "dba"})

    run = restore_env()

    assert run.state == "failed"
    assert run.report is not None
    assert "disk db-restored-db-1-data already exists in zone us-central1-a" in (run.report.message or "")
    assert gce_sim.disk(PROJECT, ZONE, "db-restored-db-1-data")["labels"] == {"team": "dba"}
