"""End to end: rendered DAGs run with dag.test() on real Airflow against the Compute Engine simulator.

Each scenario runs its DAG once (module-scoped) and records what the simulator saw right after; the tests
then check one behaviour each: VM states, the call log and invariants, snapshots, and the run report the
DAG wrote to the emulated Composer bucket.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1, storage

from dags_templates.render import render_dag
from devstack.gce_simulator import ComputeSimulator, Fault, Profile, compute_client
from tests.fixtures.airflow_env import AirflowDags
from tests.fixtures.clock_steps import ACT_WITHIN, LONG, operation_done, retaining, stepped_until
from tests.fixtures.gcs import COMPOSER_BUCKET, GCS_PROJECT
from tests.fixtures.waits import wait_until
from vmbackup.backup.preflight import GUEST_FLUSH_FAILED_NOTE
from vmbackup.backup.resolution import Target, all_targets, resolve_targets
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.model import labels as vmlabels
from vmbackup.model.identifiers import SNAPSHOT_NAME_PATTERN, run_id_label
from vmbackup.model.policy import BackupPolicy, WaitMode, parse_policy
from vmbackup.model.report import RunReport, latest_report_object_name, report_object_name
from vmbackup.vm.lock import acquire_lock, release_lock
from vmbackup.vm.marked import start_if_ours

pytestmark = pytest.mark.airflow

PROJECT = "demo-project"
SHOP_SELECTOR = {
    "zones": ["us-central1-a", "us-central1-b"],
    "matchLabels": {"app": "shop"},
    "tierLabel": "tier",
}
WORDPRESS = {"instances": [{"name": "wordpress-1-vm", "zone": "us-central1-c"}]}


@dataclass
class BackupRun:
    """A finished run and what the simulator looked like right after it."""

    policy: BackupPolicy
    state: str
    task_states: dict[str, str]
    report: RunReport | None
    report_objects: list[str]
    calls: list[dict[str, Any]]
    violations: list[dict[str, Any]]
    left_in_wrong_state: list[dict[str, Any]]
    snapshots: list[dict[str, Any]]
    operations: list[dict[str, Any]]
    statuses: dict[str, str] = field(default_factory=dict)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    instant_snapshots: list[dict[str, Any]] = field(default_factory=list)

    def calls_of(self, method: str, instance: str | None = None) -> list[dict[str, Any]]:
        return [
            c
            for c in self.calls
            if c["method"] == method and c["status"] == 200 and instance in (None, c["params"].get("instance"))
        ]

    def operation_times(self, operation_type: str, key: str) -> dict[str, float]:
        """{instance: epoch seconds} of each successful operation of a type, e.g. ("stop", "endTime")."""
        return {
            op["targetLink"].rsplit("/", 1)[-1]: datetime.fromisoformat(op[key]).timestamp()
            for op in self.operations
            if op["operationType"] == operation_type and key in op and "error" not in op
        }

    def ours(self) -> list[dict[str, Any]]:
        return [s for s in self.snapshots if s.get("labels", {}).get(vmlabels.POLICY_NAME) == self.policy.name]

    def instance_report(self, name: str) -> Any:
        assert self.report is not None
        (found,) = [i for i in self.report.instances if i.instance == name]
        return found


@pytest.fixture(scope="module")
def backup(gce_server: ComputeSimulator, gcs_server: str, airflow_home: Any) -> Iterator[Callable[..., BackupRun]]:
    """Run a policy's rendered DAG with dag.test(); `prepare` seeds the simulator before the run."""
    dags = AirflowDags(airflow_home)
    gcs = storage.Client(project=GCS_PROJECT, credentials=AnonymousCredentials())
    bucket = gcs.bucket(COMPOSER_BUCKET)
    if not bucket.exists():
        bucket = gcs.create_bucket(COMPOSER_BUCKET)

    def run(
        name: str,
        spec: dict[str, Any],
        prepare: Callable[[ComputeSimulator], None] | None = None,
        env: dict[str, str] | None = None,
        profile: Profile | None = None,
        wait_mode: WaitMode = "reschedule",
        alongside: Callable[[ComputeSimulator], None] | None = None,
    ) -> BackupRun:
        """`alongside` runs in a thread during the run (another policy's run acting on the VMs meanwhile)."""
        gce_server.reset(profile=profile or Profile.fast())
        gce_server.seed_classic(PROJECT)
        if prepare:
            prepare(gce_server)
        gce_server.clear_calls()
        policy = parse_policy("team-a", name, {"project": PROJECT, **spec}).waiting(wait_mode)
        dags.clear()
        dags.write_dag(policy.dag_id, render_dag(policy))
        settings = {
            "VMBACKUP_COMPUTE_ENDPOINT": gce_server.base_url,
            "VMBACKUP_POKE_INTERVAL_SECONDS": "0.2",
            "VMBACKUP_RETRY_DELAY_SECONDS": "0",
            "VMBACKUP_RETRY_BASE_SECONDS": "0.01",
            "GCS_BUCKET": COMPOSER_BUCKET,
            **(profile or Profile.fast()).quota_window_env(),
            **(env or {}),
        }
        with pytest.MonkeyPatch.context() as patch:
            for key, value in settings.items():
                patch.setenv(key, value)
            with ThreadPoolExecutor(1) as pool:
                meanwhile = pool.submit(alongside, gce_server) if alongside else None
                outcome = dags.run(policy.dag_id)
                if meanwhile is not None:
                    meanwhile.result(timeout=60)  # its failure fails the scenario
        assert gce_server.wait_idle(120)
        prefix = latest_report_object_name(policy.namespace, policy.name).rsplit("/", 1)[0]
        objects = sorted(b.name for b in gcs.list_blobs(COMPOSER_BUCKET, prefix=prefix))
        latest = bucket.blob(latest_report_object_name(policy.namespace, policy.name))
        report = RunReport.model_validate(json.loads(latest.download_as_text())) if latest.exists() else None
        for name_ in objects:
            bucket.blob(name_).delete()
        instances = gce_server.world.instances.values()
        return BackupRun(
            policy=policy,
            state=outcome.state,
            task_states=outcome.task_states,
            report=report,
            report_objects=objects,
            calls=gce_server.calls,
            violations=gce_server.violations,
            left_in_wrong_state=gce_server.check_left_stopped(),
            snapshots=[s for p in sorted({PROJECT, policy.spec.snapshot_project}) for s in gce_server.snapshots(p)],
            operations=gce_server.operations(),
            statuses={i.name: i.status for i in instances},
            labels={i.name: dict(i.labels) for i in instances},
            instant_snapshots=gce_server.instant_snapshots(PROJECT),
        )

    yield run
    dags.clear()


def lock_label(sim: ComputeSimulator, zone: str, name: str, value: str) -> None:
    """Put a lock label on an instance through the API, as another backup run would."""
    client = compute_client(compute_v1.InstancesClient, sim.base_url)
    ops = compute_client(compute_v1.ZoneOperationsClient, sim.base_url)
    inst = client.get(project=PROJECT, zone=zone, instance=name)
    labels = {**inst.labels, vmlabels.LOCK: value}
    body = compute_v1.InstancesSetLabelsRequest(labels=labels, label_fingerprint=inst.label_fingerprint)
    op = client.set_labels_unary(project=PROJECT, zone=zone, instance=name, instances_set_labels_request_resource=body)
    ops.wait(project=PROJECT, zone=zone, operation=op.name)


# -- tiers, selector, many VMs, an already-stopped VM ---------------------------------------------------------


@pytest.fixture(scope="module")
def shop(backup: Callable[..., BackupRun]) -> BackupRun:
    def prepare(sim: ComputeSimulator) -> None:
        sim.add_instance(PROJECT, "us-central1-b", "web-3", labels={"app": "shop", "tier": "web"}, status="TERMINATED")
        sim.add_instance(PROJECT, "us-central1-a", "cache-1", labels={"app": "shop", "tier": "cache"})

    return backup(
        "shop",
        {"selector": SHOP_SELECTOR, "tiers": ["web", "app", "db"], "snapshot": {"labels": {"team": "shop"}}},
        prepare,
    )


def test_run_succeeds(shop: BackupRun) -> None:
    assert shop.state == "success", shop.task_states
    assert shop.report is not None
    assert shop.report.result == "succeeded", shop.report.errors


def test_no_invariant_is_violated(shop: BackupRun) -> None:
    assert shop.violations == []
    assert shop.left_in_wrong_state == []


def test_running_vms_are_running_again(shop: BackupRun) -> None:
    for name in ("web-1", "web-2", "app-1", "db-1"):
        assert shop.statuses[name] == "RUNNING"


def test_already_stopped_vm_stays_stopped_and_is_snapshotted(shop: BackupRun) -> None:
    assert shop.statuses["web-3"] == "TERMINATED"
    assert shop.calls_of("instances.stop", "web-3") == []
    assert shop.calls_of("instances.start", "web-3") == []
    assert [s["labels"][vmlabels.INSTANCE] for s in shop.ours()].count("web-3") == 1


def test_tiers_stop_in_order(shop: BackupRun) -> None:
    stops = [c["params"]["instance"] for c in shop.calls_of("instances.stop")]
    tier_of = {"web-1": 0, "web-2": 0, "app-1": 1, "db-1": 2}
    assert sorted(stops, key=tier_of.__getitem__) == stops
    assert set(stops) == set(tier_of)


def test_every_vm_of_a_tier_is_stopped_before_the_next_tier_stops(shop: BackupRun) -> None:
    stopped = shop.operation_times("stop", "endTime")
    stop_called = shop.operation_times("stop", "insertTime")
    assert max(stopped["web-1"], stopped["web-2"]) <= stop_called["app-1"]
    assert stopped["app-1"] <= stop_called["db-1"]


def test_a_tier_starts_only_after_the_next_tier_is_running(shop: BackupRun) -> None:
    started = shop.operation_times("start", "endTime")
    start_called = shop.operation_times("start", "insertTime")
    assert started["db-1"] <= start_called["app-1"]
    assert started["app-1"] <= min(start_called["web-1"], start_called["web-2"])


def test_tiers_start_in_reverse_order(shop: BackupRun) -> None:
    starts = [c["params"]["instance"] for c in shop.calls_of("instances.start")]
    tier_of = {"web-1": 0, "web-2": 0, "app-1": 1, "db-1": 2}
    assert sorted(starts, key=lambda n: -tier_of[n]) == starts
    assert set(starts) == set(tier_of)


def test_every_disk_gets_exactly_one_snapshot(shop: BackupRun) -> None:
    disks = sorted(s["sourceDisk"].rsplit("/", 1)[-1] for s in shop.ours())
    assert disks == ["app-1", "db-1", "db-1-data", "web-1", "web-2", "web-3"]


def test_snapshots_carry_the_operator_labels_and_user_labels(shop: BackupRun) -> None:
    for snap in shop.ours():
        labels = snap["labels"]
        assert labels[vmlabels.MANAGED_BY] == vmlabels.MANAGED_BY_VALUE
        assert labels[vmlabels.POLICY_NAMESPACE] == "team-a"
        assert labels[vmlabels.CONSISTENCY] == "stop"
        assert labels[vmlabels.RUN]
        assert labels["team"] == "shop"


def test_snapshot_names_are_valid_compute_engine_names(shop: BackupRun) -> None:
    for snap in shop.ours():
        assert SNAPSHOT_NAME_PATTERN.fullmatch(snap["name"]), snap["name"]
        assert snap["status"] == "READY"


def test_vm_with_an_unknown_tier_is_skipped_and_reported(shop: BackupRun) -> None:
    assert shop.calls_of("instances.stop", "cache-1") == []
    assert "not one of the tiers" in (shop.instance_report("cache-1").skipped_reason or "")


def test_report_has_downtime_and_snapshots_per_instance(shop: BackupRun) -> None:
    db = shop.instance_report("db-1")
    assert db.prior_status == db.final_status == "RUNNING"
    assert db.downtime_seconds is not None
    assert db.downtime_seconds >= 0
    assert sorted(d.disk for d in db.disks) == ["db-1", "db-1-data"]
    assert all(d.state == "READY" for d in db.disks)


def test_report_is_written_for_the_run_and_as_latest(shop: BackupRun) -> None:
    assert shop.report is not None
    run_object = report_object_name("team-a", "shop", shop.report.run_id)
    assert shop.report_objects == sorted([run_object, latest_report_object_name("team-a", "shop")])


def test_locks_are_released_after_the_run(shop: BackupRun) -> None:
    assert all(vmlabels.LOCK not in labels for labels in shop.labels.values())


# -- a tier with no VM, and VMs restarted before their upload ends -------------------------------------------


@pytest.fixture(scope="module")
def empty_tier(backup: Callable[..., BackupRun]) -> BackupRun:
    return backup("gaps", {"selector": SHOP_SELECTOR, "tiers": ["web", "queue", "db"]})


def test_a_tier_without_vms_does_not_stop_the_run(empty_tier: BackupRun) -> None:
    assert empty_tier.state == "success", empty_tier.task_states
    assert empty_tier.report is not None
    assert sorted({c["params"]["instance"] for c in empty_tier.calls_of("instances.stop")}) == [
        "db-1",
        "web-1",
        "web-2",
    ]


def test_tiers_around_an_empty_tier_keep_their_order(empty_tier: BackupRun) -> None:
    stopped = empty_tier.operation_times("stop", "endTime")
    stop_called = empty_tier.operation_times("stop", "insertTime")
    assert max(stopped["web-1"], stopped["web-2"]) <= stop_called["db-1"]
    assert empty_tier.statuses["db-1"] == "RUNNING"


@pytest.fixture(scope="module")
def slow_upload(backup: Callable[..., BackupRun]) -> BackupRun:
    """The upload lasts until the VM is RUNNING again (its start DONE): then the test steps it to READY."""

    def end_the_upload_once_started(sim: ComputeSimulator) -> None:
        name = WORDPRESS["instances"][0]["name"]  # a VM of one disk, of its name
        vm, disk = f"instances/{name}", f"disks/{name}"
        wait_until(lambda: operation_done(sim, "start", vm), within=ACT_WITHIN, what=f"{name} started again")
        stepped_until(sim, lambda: operation_done(sim, "createSnapshot", disk), "the snapshot READY")

    uploading = retaining(snapshot_upload_base_seconds=LONG)
    return backup("slowupload", WORDPRESS, profile=uploading, alongside=end_the_upload_once_started)


def test_vm_restarts_before_its_snapshot_finishes_uploading(slow_upload: BackupRun) -> None:
    assert slow_upload.state == "success", slow_upload.task_states
    start_called = slow_upload.operation_times("start", "insertTime")["wordpress-1-vm"]
    (snapshot_ready,) = slow_upload.operation_times("createSnapshot", "endTime").values()
    assert start_called < snapshot_ready
    assert slow_upload.violations == []


def test_run_reports_ready_snapshots_after_the_upload(slow_upload: BackupRun) -> None:
    assert slow_upload.report is not None
    assert [d.state for d in slow_upload.instance_report("wordpress-1-vm").disks] == ["READY"]


# -- consistency modes that keep VMs running ------------------------------------------------------------------


@pytest.fixture(scope="module")
def crash_consistent(backup: Callable[..., BackupRun]) -> BackupRun:
    settings = {"labels": {"cost-center": "cc-42"}, "storageLocation": "europe-west1"}
    return backup("crash", {**WORDPRESS, "consistency": "none", "snapshot": settings})


@pytest.fixture(scope="module")
def guest_flush(backup: Callable[..., BackupRun]) -> BackupRun:
    return backup("flush", {**WORDPRESS, "consistency": "guestFlush"}, env={"GCS_BUCKET": ""})


def test_crash_consistent_mode_snapshots_without_stopping(crash_consistent: BackupRun) -> None:
    assert crash_consistent.state == "success"
    assert crash_consistent.calls_of("instances.stop") == []
    (snap,) = crash_consistent.ours()
    assert snap["labels"][vmlabels.CONSISTENCY] == "none"
    assert snap["guestFlush"] is False


def test_snapshots_use_the_policy_storage_location_and_labels(crash_consistent: BackupRun) -> None:
    (snap,) = crash_consistent.ours()
    assert snap["storageLocations"] == ["europe-west1"]
    assert snap["labels"]["cost-center"] == "cc-42"


def test_without_a_bucket_the_run_still_succeeds_and_uploads_nothing(guest_flush: BackupRun) -> None:
    assert guest_flush.state == "success"
    assert guest_flush.report_objects == []


def test_guest_flush_mode_asks_compute_engine_to_flush(guest_flush: BackupRun) -> None:
    assert guest_flush.state == "success"
    assert guest_flush.calls_of("instances.stop") == []
    (snap,) = guest_flush.ours()
    assert snap["guestFlush"] is True
    assert snap["labels"][vmlabels.CONSISTENCY] == "guestflush"


@pytest.fixture(scope="module")
def guest_cannot_flush(backup: Callable[..., BackupRun]) -> BackupRun:
    """A Linux guest whose agent has snapshots disabled (a simulator seed: the API shows no such field)."""

    def prepare(sim: ComputeSimulator) -> None:
        sim.add_instance(PROJECT, "us-central1-f", "noflush-1", guest_flush_supported=False)

    spec = {"instances": [{"name": "noflush-1", "zone": "us-central1-f"}], "consistency": "guestFlush"}
    return backup("noflush", spec, prepare)


def test_a_guest_that_cannot_flush_fails_the_run_with_a_note_naming_the_fix(guest_cannot_flush: BackupRun) -> None:
    assert guest_cannot_flush.state == "failed"
    assert guest_cannot_flush.instance_report("noflush-1").note == GUEST_FLUSH_FAILED_NOTE


# -- retention -------------------------------------------------------------------------------------------------


def seed_snapshot(sim: ComputeSimulator, name: str, labels: dict[str, str], project: str = PROJECT) -> None:
    """A snapshot of the wordpress disk in `project` (disks.createSnapshot in its own, snapshots.insert elsewhere)."""
    disks = compute_client(compute_v1.DisksClient, sim.base_url)
    snapshots = compute_client(compute_v1.SnapshotsClient, sim.base_url)
    zone_ops = compute_client(compute_v1.ZoneOperationsClient, sim.base_url)
    global_ops = compute_client(compute_v1.GlobalOperationsClient, sim.base_url)
    source = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/zones/us-central1-c/disks/wordpress-1-vm"

    def seeded() -> bool:
        """Compute Engine refuses a disk's snapshots closer than its per-disk frequency (an operation DONE with
        RESOURCE_OPERATION_RATE_EXCEEDED, the snapshot not made): ask again until one is made."""
        if project == PROJECT:
            op = disks.create_snapshot_unary(
                project=PROJECT,
                zone="us-central1-c",
                disk="wordpress-1-vm",
                snapshot_resource=compute_v1.Snapshot(name=name, labels=labels),
            )
            done = zone_ops.wait(project=PROJECT, zone="us-central1-c", operation=op.name)
        else:
            resource = compute_v1.Snapshot(name=name, labels=labels, source_disk=source)
            op = snapshots.insert_unary(project=project, snapshot_resource=resource)
            done = global_ops.wait(project=project, operation=op.name)
        errors = [e.code for e in done.error.errors] if done.error else []
        assert errors in ([], ["RESOURCE_OPERATION_RATE_EXCEEDED"]), errors
        return not errors

    wait_until(seeded, what=f"snapshot {name} seeded", interval=sim.profile.snapshot_min_interval_seconds)
    time.sleep(0.002)  # distinct creationTimestamps (milliseconds) for a deterministic order


@pytest.fixture(scope="module")
def retention(backup: Callable[..., BackupRun]) -> BackupRun:
    ours = {
        vmlabels.MANAGED_BY: vmlabels.MANAGED_BY_VALUE,
        vmlabels.POLICY_NAMESPACE: "team-a",
        vmlabels.POLICY_NAME: "keep2",
        vmlabels.RUN: "rold",
    }

    def prepare(sim: ComputeSimulator) -> None:
        for index in range(3):
            seed_snapshot(sim, f"old-{index}", {**ours, vmlabels.RUN: f"rold{index}"})
        seed_snapshot(sim, "other-policy", {**ours, vmlabels.POLICY_NAME: "someone-else"})
        seed_snapshot(sim, "manual", {"owner": "alice"})

    return backup("keep2", {**WORDPRESS, "retention": {"count": 2}}, prepare)


def test_retention_keeps_the_newest_snapshots_of_the_policy(retention: BackupRun) -> None:
    assert retention.state == "success"
    kept = sorted(s["name"] for s in retention.ours())
    assert len(kept) == 2
    assert "old-2" in kept


def test_retention_deletes_exactly_the_older_ones(retention: BackupRun) -> None:
    assert retention.report is not None
    assert sorted(retention.report.pruned_snapshots) == ["old-0", "old-1"]


def test_retention_never_touches_snapshots_of_others(retention: BackupRun) -> None:
    names = {s["name"] for s in retention.snapshots}
    assert {"other-policy", "manual"} <= names
    deleted = {c["params"].get("snapshot") for c in retention.calls_of("snapshots.delete")}
    assert deleted == {"old-0", "old-1"}


# -- faults ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stop_fails(backup: Callable[..., BackupRun]) -> BackupRun:
    return backup("stopfail", WORDPRESS, lambda sim: sim.inject(Fault.backend_error("instances.stop", times=None)))


def test_failed_stop_fails_the_run(stop_fails: BackupRun) -> None:
    assert stop_fails.state == "failed"
    assert stop_fails.report is not None
    assert stop_fails.report.result == "failed"
    assert any(
        e.step == "instances.down_window" and e.message.startswith("instances.stop") for e in stop_fails.report.errors
    )


def test_failed_stop_leaves_the_vm_running_and_unlocked(stop_fails: BackupRun) -> None:
    assert stop_fails.statuses["wordpress-1-vm"] == "RUNNING"
    assert vmlabels.LOCK not in stop_fails.labels["wordpress-1-vm"]
    assert stop_fails.ours() == []


@pytest.fixture(scope="module")
def stop_operation_fails(backup: Callable[..., BackupRun]) -> BackupRun:
    fault = Fault.operation_error("instances.stop", "RESOURCE_OPERATION_RATE_EXCEEDED", "Operation rate exceeded.")
    return backup("stopopfail", WORDPRESS, lambda sim: sim.inject(fault))


def test_failed_stop_operation_fails_the_run_with_compute_engines_message(stop_operation_fails: BackupRun) -> None:
    assert stop_operation_fails.state == "failed"
    assert stop_operation_fails.report is not None
    (error,) = [e for e in stop_operation_fails.report.errors if e.step == "instances.down_window"]
    assert error.message.startswith("wait_stopped")
    assert "Operation rate exceeded." in error.message


def test_failed_stop_operation_takes_no_snapshot_and_leaves_the_vm_running(stop_operation_fails: BackupRun) -> None:
    assert stop_operation_fails.statuses["wordpress-1-vm"] == "RUNNING"
    assert vmlabels.LOCK not in stop_operation_fails.labels["wordpress-1-vm"]
    assert stop_operation_fails.ours() == []
    assert stop_operation_fails.violations == []


@pytest.fixture(scope="module")
def stuck_stop(backup: Callable[..., BackupRun]) -> BackupRun:
    """The guest takes 50 s to shut down; the policy allows 30 s (the least it accepts)."""
    spec = {**WORDPRESS, "timeouts": {"stopSeconds": 30}}
    return backup("stuckstop", spec, lambda sim: sim.inject(Fault.slow("instances.stop", 50)))


def test_a_stop_past_its_timeout_fails_the_run_naming_the_field(stuck_stop: BackupRun) -> None:
    assert stuck_stop.state == "failed"
    assert stuck_stop.report is not None
    (error,) = [e for e in stuck_stop.report.errors if e.step == "instances.down_window"]
    assert "spec.timeouts.stopSeconds" in error.message
    assert stuck_stop.task_states["instances.down_window[0]"] == "failed"


def test_a_stop_past_its_timeout_takes_no_snapshot_and_starts_the_vm_again(stuck_stop: BackupRun) -> None:
    assert stuck_stop.ours() == []
    assert stuck_stop.statuses["wordpress-1-vm"] == "RUNNING"
    assert stuck_stop.left_in_wrong_state == []
    assert len(stuck_stop.calls_of("instances.start")) == 1


def seed_regional_vm(sim: ComputeSimulator) -> None:
    """ha-1 in us-central1-a: a zonal boot disk and a regional persistent disk (us-central1) beside it."""
    sim.add_instance(PROJECT, "us-central1-a", "ha-1", disks=["ha-1", {"name": "ha-shared", "region": "us-central1"}])


HA = {"instances": [{"name": "ha-1", "zone": "us-central1-a"}]}


@pytest.fixture(scope="module")
def regional_disk(backup: Callable[..., BackupRun]) -> BackupRun:
    return backup("regional", HA, seed_regional_vm)


def test_a_vm_with_a_regional_disk_is_backed_up(regional_disk: BackupRun) -> None:
    assert regional_disk.state == "success", regional_disk.task_states
    assert regional_disk.violations == []
    assert regional_disk.statuses["ha-1"] == "RUNNING"


def test_a_regional_disk_is_snapshotted_by_snapshots_insert_from_its_regional_url(regional_disk: BackupRun) -> None:
    sources = sorted(s["sourceDisk"].split("/projects/", 1)[1] for s in regional_disk.ours())
    assert sources == [f"{PROJECT}/regions/us-central1/disks/ha-shared", f"{PROJECT}/zones/us-central1-a/disks/ha-1"]
    assert [c["status"] for c in regional_disk.calls if c["method"] == "snapshots.insert"] == [200]
    assert all(s["status"] == "READY" for s in regional_disk.ours())


def test_the_report_lists_the_regional_disk_in_its_region(regional_disk: BackupRun) -> None:
    (shared,) = [d for d in regional_disk.instance_report("ha-1").disks if d.disk == "ha-shared"]
    assert (shared.zone, shared.state, shared.method) == ("us-central1", "READY", "standard")


@pytest.fixture(scope="module")
def snapshot_fails(backup: Callable[..., BackupRun]) -> BackupRun:
    fault = Fault.operation_error("disks.createSnapshot", "QUOTA_EXCEEDED", "Quota 'SNAPSHOTS' exceeded.", times=None)
    return backup("snapfail", WORDPRESS, lambda sim: sim.inject(fault))


def test_failed_snapshot_fails_the_run_with_compute_engines_message(snapshot_fails: BackupRun) -> None:
    assert snapshot_fails.state == "failed"
    assert snapshot_fails.report is not None
    assert any("Quota 'SNAPSHOTS' exceeded." in e.message for e in snapshot_fails.report.errors)


def test_failed_snapshot_still_starts_the_vm(snapshot_fails: BackupRun) -> None:
    assert snapshot_fails.statuses["wordpress-1-vm"] == "RUNNING"
    assert snapshot_fails.left_in_wrong_state == []
    assert len(snapshot_fails.calls_of("instances.start")) == 1


@pytest.fixture(scope="module")
def start_fails(backup: Callable[..., BackupRun]) -> BackupRun:
    fault = Fault.operation_error("instances.start", "RESOURCE_EXHAUSTED", "Zone is out of resources.", times=1)
    return backup("startfail", WORDPRESS, lambda sim: sim.inject(fault))


def test_failed_start_is_retried_by_the_safety_net(start_fails: BackupRun) -> None:
    assert start_fails.statuses["wordpress-1-vm"] == "RUNNING"
    assert len(start_fails.calls_of("instances.start")) == 2
    assert start_fails.task_states["restore_instances"] == "success"


def test_failed_start_fails_the_run_with_compute_engines_message(start_fails: BackupRun) -> None:
    assert start_fails.state == "failed"
    assert start_fails.report is not None
    assert any("Zone is out of resources." in e.message for e in start_fails.report.errors)


@pytest.fixture(scope="module")
def rate_limited(backup: Callable[..., BackupRun]) -> BackupRun:
    return backup("storm", WORDPRESS, lambda sim: sim.inject(Fault.rate_limited("*", times=10)))


def test_rate_limit_storm_is_ridden_out(rate_limited: BackupRun) -> None:
    assert rate_limited.state == "success", rate_limited.task_states
    assert rate_limited.violations == []
    assert len(rate_limited.ours()) == 1
    assert rate_limited.statuses["wordpress-1-vm"] == "RUNNING"


@pytest.fixture(scope="module")
def snapshot_retried(backup: Callable[..., BackupRun]) -> BackupRun:
    """The cut fails after its first disk (503s on the second exhaust the hook's retries) and is tried again."""
    fault = Fault.backend_error("disks.createSnapshot", target="db-1-data", times=6)
    spec = {"instances": [{"name": "db-1", "zone": "us-central1-a"}]}
    return backup("dbretry", spec, lambda sim: sim.inject(fault))


def test_a_retried_cut_creates_no_duplicate(snapshot_retried: BackupRun) -> None:
    assert snapshot_retried.state == "success", snapshot_retried.task_states
    disks = sorted(s["sourceDisk"].rsplit("/", 1)[-1] for s in snapshot_retried.ours())
    assert disks == ["db-1", "db-1-data"]
    assert snapshot_retried.violations == []


def test_a_retried_cut_meets_its_own_snapshot(snapshot_retried: BackupRun) -> None:
    boot = [
        c for c in snapshot_retried.calls if c["method"] == "disks.createSnapshot" and c["params"]["disk"] == "db-1"
    ]
    assert [c["status"] for c in boot] == [200, 409]


# -- the lock guard --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def locked(backup: Callable[..., BackupRun]) -> BackupRun:
    def prepare(sim: ComputeSimulator) -> None:
        lock_label(sim, "us-central1-a", "web-1", f"rother-{int(time.time()) + 3600}")
        lock_label(sim, "us-central1-b", "web-2", f"rstale-{int(time.time()) - 60}")

    spec = {
        "instances": [{"name": "web-1", "zone": "us-central1-a"}, {"name": "web-2", "zone": "us-central1-b"}],
        "timeouts": {"lockWaitSeconds": 1},  # an older lock (no holder labels) that nobody releases
    }
    return backup("locked", spec, prepare)


def test_vm_held_by_another_run_is_not_stopped(locked: BackupRun) -> None:
    assert locked.calls_of("instances.stop", "web-1") == []
    assert locked.statuses["web-1"] == "RUNNING"
    assert "held by another run (rother;" in (locked.instance_report("web-1").skipped_reason or "")


def test_an_expired_lock_does_not_block_a_backup(locked: BackupRun) -> None:
    assert len(locked.calls_of("instances.stop", "web-2")) == 1
    assert locked.statuses["web-2"] == "RUNNING"
    assert vmlabels.LOCK not in locked.labels["web-2"]


def test_the_other_runs_lock_is_left_in_place(locked: BackupRun) -> None:
    assert locked.labels["web-1"][vmlabels.LOCK].startswith("rother-")


def test_a_vm_held_by_another_run_does_not_fail_the_run(locked: BackupRun) -> None:
    assert locked.state == "success", locked.task_states
    assert "waited" in (locked.instance_report("web-1").skipped_reason or "")


# -- overlapping policies: two policies select one VM ------------------------------------------------------------

NIGHTLY_RUN = "scheduled__2026-12-02T02:00:00+00:00"
WEB_1 = {"name": "web-1", "zone": "us-central1-a"}
WEB_SELECTOR = {"zones": ["us-central1-a"], "matchLabels": {"app": "shop", "tier": "web"}}  # selects web-1


@dataclass
class OtherPolicyRun:
    """Policy `nightly`'s run holding web-1, through that policy's own code: resolved, locked and stopped as its
    stop step does; given back as its start step and started sensor do (start, then release the lock)."""

    hook: ComputeEngineHook
    target: Target
    released: bool = False

    @classmethod
    def holding(cls, sim: ComputeSimulator, spec: dict[str, Any]) -> OtherPolicyRun:
        hook = ComputeEngineHook(endpoint=sim.base_url)
        nightly = parse_policy("team-a", "nightly", {"project": PROJECT, **spec})
        (target,) = [t for t in all_targets(resolve_targets(nightly, NIGHTLY_RUN, hook)) if t["instance"] == "web-1"]
        acquire_lock(hook, target, 600)
        hook.wait_done(hook.stop_instance(PROJECT, target["zone"], "web-1"), 30)
        return cls(hook, target)

    def give_back(self) -> None:
        started = start_if_ours(self.hook, self.target, 30)
        if started is not None:
            self.hook.wait_done(started, 30)
        self.released = release_lock(self.hook, self.target)


def looks_at(sim: ComputeSimulator, instance: str) -> int:
    return sum(1 for c in sim.calls if c["method"] == "instances.get" and c["params"].get("instance") == instance)


@dataclass
class Overlap:
    run: BackupRun
    nightly: OtherPolicyRun

    def nightly_started_at(self) -> int:
        """Index in the call log of nightly's start of web-1 (this run's calls are in the same log)."""
        return next(i for i, c in enumerate(self.run.calls) if c["method"] == "instances.start" and c["status"] == 200)

    def stopped_at(self) -> int:
        return next(i for i, c in enumerate(self.run.calls) if c["method"] == "instances.stop" and c["status"] == 200)


def overlap(
    backup: Callable[..., BackupRun],
    name: str,
    nightly_spec: dict[str, Any],
    spec: dict[str, Any],
    give_back_when: Callable[[ComputeSimulator], bool] | None,
    wait_mode: WaitMode = "reschedule",
) -> Overlap:
    """Run policy `name` while nightly holds web-1; nightly gives it back once `give_back_when` holds (None: after
    the run)."""
    held: list[OtherPolicyRun] = []

    def hold(sim: ComputeSimulator) -> None:
        held.append(OtherPolicyRun.holding(sim, nightly_spec))

    def give_back(sim: ComputeSimulator) -> None:
        assert give_back_when is not None
        wait_until(lambda: give_back_when(sim), what="the moment to give web-1 back", interval=0.05)
        held[0].give_back()

    run = backup(name, spec, hold, alongside=give_back if give_back_when else None, wait_mode=wait_mode)
    if give_back_when is None:
        held[0].give_back()
    return Overlap(run=run, nightly=held[0])


def waited_for_web_1(sim: ComputeSimulator) -> bool:
    """This run's stop step looked at web-1 at least twice (so it was rescheduled at least once)."""
    return looks_at(sim, "web-1") >= 3  # the resolve step's look (explicit list) plus two of the stop step's


@pytest.fixture(scope="module")
def overlap_lists_wait(backup: Callable[..., BackupRun]) -> Overlap:
    """Two explicit lists name web-1; nightly holds it when `hourly` starts and gives it back while hourly waits."""
    spec = {"instances": [WEB_1], "timeouts": {"lockWaitSeconds": 60}}
    return overlap(backup, "hourly", {"instances": [WEB_1]}, spec, waited_for_web_1)


def test_overlapping_lists_wait_for_the_vm_then_both_back_it_up(overlap_lists_wait: Overlap) -> None:
    assert overlap_lists_wait.run.state == "success", overlap_lists_wait.run.task_states
    assert overlap_lists_wait.nightly.released
    assert overlap_lists_wait.run.instance_report("web-1").skipped_reason is None
    assert [s["sourceDisk"].rsplit("/", 1)[-1] for s in overlap_lists_wait.run.ours()] == ["web-1"]


def test_the_waiting_run_stops_the_vm_only_after_the_other_policy_started_it(overlap_lists_wait: Overlap) -> None:
    assert len(overlap_lists_wait.run.calls_of("instances.stop", "web-1")) == 1
    assert overlap_lists_wait.nightly_started_at() < overlap_lists_wait.stopped_at()


def test_after_both_runs_the_vm_runs_and_carries_no_lock(overlap_lists_wait: Overlap) -> None:
    assert overlap_lists_wait.run.statuses["web-1"] == "RUNNING"
    assert not set(overlap_lists_wait.run.labels["web-1"]) & set(vmlabels.LOCK_LABELS)
    assert overlap_lists_wait.run.violations == []


@pytest.fixture(scope="module")
def overlap_deferred_wait(backup: Callable[..., BackupRun]) -> Overlap:
    """As overlap_lists_wait, with the DAG rendered for an Airflow with a triggerer: the window waits for the lock by
    rescheduling, then defers to its trigger."""
    spec = {"instances": [WEB_1], "timeouts": {"lockWaitSeconds": 60}}
    return overlap(backup, "hourlydeferred", {"instances": [WEB_1]}, spec, waited_for_web_1, wait_mode="deferrable")


def test_a_deferrable_window_waits_for_the_lock_then_backs_up_the_vm(overlap_deferred_wait: Overlap) -> None:
    assert overlap_deferred_wait.run.state == "success", overlap_deferred_wait.run.task_states
    assert overlap_deferred_wait.nightly_started_at() < overlap_deferred_wait.stopped_at()
    assert [s["sourceDisk"].rsplit("/", 1)[-1] for s in overlap_deferred_wait.run.ours()] == ["web-1"]
    assert overlap_deferred_wait.run.statuses["web-1"] == "RUNNING"


@pytest.fixture(scope="module")
def overlap_lists_skip(backup: Callable[..., BackupRun]) -> Overlap:
    """Nightly keeps web-1 past hourly's lockWaitSeconds and gives it back only while hourly's next tier stops."""
    spec = {
        "tiers": ["web", "app"],
        "instances": [WEB_1 | {"tier": "web"}, {"name": "app-1", "zone": "us-central1-a", "tier": "app"}],
        "timeouts": {"lockWaitSeconds": 1},
    }

    def app_tier_stopped(sim: ComputeSimulator) -> bool:  # hourly is done with web-1 (its tier) by then
        return any(c["method"] == "instances.stop" and c["params"].get("instance") == "app-1" for c in sim.calls)

    return overlap(backup, "hourly", {"instances": [WEB_1]}, spec, app_tier_stopped)


def test_a_vm_held_past_lock_wait_is_skipped_naming_the_other_policy_and_run(overlap_lists_skip: Overlap) -> None:
    reason = overlap_lists_skip.run.instance_report("web-1").skipped_reason or ""
    assert reason.startswith(f"held by policy team-a/nightly run {run_id_label(NIGHTLY_RUN)}; waited "), reason
    assert "spec.timeouts.lockWaitSeconds: 1 s" in reason


def test_the_skipped_vm_is_not_touched_and_the_rest_is_backed_up(overlap_lists_skip: Overlap) -> None:
    assert overlap_lists_skip.run.calls_of("instances.stop", "web-1") == []
    assert [s["sourceDisk"].rsplit("/", 1)[-1] for s in overlap_lists_skip.run.ours()] == ["app-1"]


def test_a_skipped_vm_its_holder_gives_back_meanwhile_is_no_failure(overlap_lists_skip: Overlap) -> None:
    """web-1 was TERMINATED (nightly's) when hourly looked and RUNNING at its report: not hourly's doing."""
    assert overlap_lists_skip.nightly.released
    assert overlap_lists_skip.run.statuses["web-1"] == "RUNNING"
    assert overlap_lists_skip.run.state == "success", overlap_lists_skip.run.task_states
    assert overlap_lists_skip.run.report is not None
    assert overlap_lists_skip.run.report.result == "succeeded", overlap_lists_skip.run.report.errors


@pytest.fixture(scope="module")
def overlap_selector_wait(backup: Callable[..., BackupRun]) -> Overlap:
    """Nightly names web-1 in a list, `shopweb` selects it by label; shopweb waits, then backs it up."""
    spec = {"selector": WEB_SELECTOR, "timeouts": {"lockWaitSeconds": 60}}

    def looked_twice(sim: ComputeSimulator) -> bool:  # a selector resolves with a list: every look is the stop step's
        return looks_at(sim, "web-1") >= 2

    return overlap(backup, "shopweb", {"instances": [WEB_1]}, spec, looked_twice)


def test_a_list_and_a_selector_on_one_vm_both_back_it_up(overlap_selector_wait: Overlap) -> None:
    assert overlap_selector_wait.run.state == "success", overlap_selector_wait.run.task_states
    assert overlap_selector_wait.nightly.released
    assert overlap_selector_wait.nightly_started_at() < overlap_selector_wait.stopped_at()
    assert [s["sourceDisk"].rsplit("/", 1)[-1] for s in overlap_selector_wait.run.ours()] == ["web-1"]
    assert overlap_selector_wait.run.statuses["web-1"] == "RUNNING"


@pytest.fixture(scope="module")
def overlap_selector_skip(backup: Callable[..., BackupRun]) -> Overlap:
    """Nightly selects web-1 by label and keeps it; `hourly` lists it and gives up after lockWaitSeconds."""
    spec = {"instances": [WEB_1], "timeouts": {"lockWaitSeconds": 1}}
    return overlap(backup, "hourly", {"selector": WEB_SELECTOR}, spec, None)


def test_a_selector_policys_hold_is_named_when_a_list_policy_skips(overlap_selector_skip: Overlap) -> None:
    assert overlap_selector_skip.run.state == "success", overlap_selector_skip.run.task_states
    reason = overlap_selector_skip.run.instance_report("web-1").skipped_reason or ""
    assert reason.startswith("held by policy team-a/nightly run "), reason
    assert overlap_selector_skip.run.calls_of("instances.stop", "web-1") == []


# -- deferrable sensors ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deferred(backup: Callable[..., BackupRun]) -> BackupRun:
    slow = Fault.slow("instances.stop", 1.5)  # still running when the sensor first looks: it must defer
    uploading = Profile.fast(snapshot_upload_base_seconds=2.0)  # the upload wait defers too
    return backup("deferred", WORDPRESS, lambda sim: sim.inject(slow), profile=uploading, wait_mode="deferrable")


def test_deferrable_sensors_complete_a_backup(deferred: BackupRun) -> None:
    assert deferred.state == "success", deferred.task_states
    assert deferred.statuses["wordpress-1-vm"] == "RUNNING"
    assert len(deferred.ours()) == 1


def test_deferred_upload_wait_reports_the_snapshot_ready(deferred: BackupRun) -> None:
    assert deferred.violations == []
    assert deferred.report is not None
    assert deferred.report.snapshots == [s["name"] for s in deferred.ours()]


def test_the_deferred_down_window_long_polls_the_stop_in_the_trigger(deferred: BackupRun) -> None:
    (stop_op,) = [op["name"] for op in deferred.operations if op["operationType"] == "stop"]
    on_stop = [c["method"] for c in deferred.calls if c["params"].get("operation") == stop_op]
    assert on_stop[0] == "zoneOperations.wait"
    assert "zoneOperations.get" not in on_stop


# -- rolling tiers (maxUnavailable) -----------------------------------------------------------------------------

ROLLING_WEB = ["roll-web-1", "roll-web-2", "roll-web-3"]


def fewest_running(run: BackupRun, names: list[str]) -> int:
    """The fewest of `names` RUNNING at any instant of the simulator's timeline (stop begins -> RUNNING again)."""
    from bench.workflow import instance_down_intervals

    edges = sorted(
        (moment.timestamp(), change)
        for _, down, up in instance_down_intervals(run.operations, "us-central1-a", names)
        for moment, change in ((down, -1), (up, +1))
    )
    running = fewest = len(names)
    for _, change in edges:  # at equal times RUNNING again (+1) sorts after going down (-1): the worst case
        running += change
        fewest = min(fewest, running)
    return fewest


@pytest.fixture(scope="module")
def rolling(backup: Callable[..., BackupRun]) -> BackupRun:
    def prepare(sim: ComputeSimulator) -> None:
        for name in ROLLING_WEB:
            sim.add_instance(PROJECT, "us-central1-a", name, labels={"app": "roll", "tier": "web"})
        sim.add_instance(PROJECT, "us-central1-a", "roll-db-1", labels={"app": "roll", "tier": "db"})

    selector = {"zones": ["us-central1-a"], "matchLabels": {"app": "roll"}, "tierLabel": "tier"}
    return backup("rolling", {"selector": selector, "tiers": ["web", "db"], "maxUnavailable": 1}, prepare)


def test_a_rolling_tier_backs_up_every_vm(rolling: BackupRun) -> None:
    assert rolling.state == "success", rolling.task_states
    assert sorted(s["labels"][vmlabels.INSTANCE] for s in rolling.ours()) == sorted([*ROLLING_WEB, "roll-db-1"])
    assert rolling.violations == []
    assert rolling.left_in_wrong_state == []


def test_a_rolling_tier_of_three_never_has_fewer_than_two_running(rolling: BackupRun) -> None:
    assert fewest_running(rolling, ROLLING_WEB) == 2
    assert all(len(rolling.calls_of("instances.stop", name)) == 1 for name in ROLLING_WEB)


def test_a_rolling_tier_keeps_its_last_vm_down_while_the_next_tier_is_backed_up(rolling: BackupRun) -> None:
    stopped = rolling.operation_times("stop", "endTime")
    started = rolling.operation_times("start", "endTime")
    stop_called = rolling.operation_times("stop", "insertTime")
    start_called = rolling.operation_times("start", "insertTime")
    last = max(ROLLING_WEB, key=stop_called.__getitem__)
    assert stopped[last] <= stop_called["roll-db-1"]
    assert started["roll-db-1"] <= start_called[last]


# -- a fleet beyond Airflow's max_map_length ------------------------------------------------------------------

# Two and a half times the limit: windows must hold several VMs each. (The size costs test time: every VM is a
# stop, a snapshot and a start, one task after another under dag.test().)
MAX_MAP_LENGTH = 4
FLEET = [f"fleet-{i:02d}" for i in range(1, 11)]


@pytest.fixture(scope="module")
def fleet(backup: Callable[..., BackupRun]) -> BackupRun:
    def prepare(sim: ComputeSimulator) -> None:
        for name in FLEET:
            sim.add_instance(PROJECT, "us-central1-f", name, labels={"app": "fleet"})

    selector = {"zones": ["us-central1-f"], "matchLabels": {"app": "fleet"}}
    return backup("fleet", {"selector": selector}, prepare, env={"AIRFLOW__CORE__MAX_MAP_LENGTH": str(MAX_MAP_LENGTH)})


def test_a_fleet_beyond_max_map_length_backs_up_every_vm(fleet: BackupRun) -> None:
    assert fleet.state == "success", fleet.task_states
    assert sorted(s["labels"][vmlabels.INSTANCE] for s in fleet.ours()) == FLEET
    assert all(fleet.statuses[name] == "RUNNING" for name in FLEET)
    assert fleet.left_in_wrong_state == []


def test_a_fleet_beyond_max_map_length_maps_to_at_most_that_many_windows(fleet: BackupRun) -> None:
    windows = [k for k in fleet.task_states if k.startswith("instances.down_window[")]
    assert 0 < len(windows) <= MAX_MAP_LENGTH


def test_every_vm_of_the_fleet_is_stopped_once(fleet: BackupRun) -> None:
    assert sorted(c["params"]["instance"] for c in fleet.calls_of("instances.stop")) == FLEET
    assert fleet.report is not None
    assert [i.instance for i in fleet.report.instances if i.downtime_seconds is not None] == FLEET
