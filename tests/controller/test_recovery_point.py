"""spec.rpo against each VM's newest good backup: what a good backup is, breach, recovery, and what status says.

Pure: the time is a parameter (``now``), so crossing the objective is a value, not a wait.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from controller.conditions import RPO_MET, find_condition
from controller.metrics import RPO_BREACHED, ControllerMetrics
from controller.recovery_point import RecoveryPoints, recovery_point_status
from controller.status import PolicyState, desired_status
from vmbackup.model.policy import BackupPolicy, parse_policy
from vmbackup.model.report import DiskResult, InstanceResult, RunReport

CREATED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SPEC: dict[str, Any] = {
    "project": "shop-prod-1",
    "instances": [{"name": "web-1", "zone": "us-central1-a"}, {"name": "web-2", "zone": "us-central1-b"}],
    "schedule": "0 2 * * *",
    "rpo": "26h",
}


def policy(**changes: Any) -> BackupPolicy:
    return parse_policy("shop", "web", {**SPEC, **changes}, created=CREATED)


def vm(name: str, zone: str, *states: str, **fields: Any) -> InstanceResult:
    disks = [DiskResult(disk=f"{name}-{i}", zone=zone, snapshot=f"{name}-{i}-s", state=s) for i, s in enumerate(states)]
    return InstanceResult(instance=name, zone=zone, disks=disks, **fields)


def report(run_id: str, started: datetime, *vms: InstanceResult, result: str = "succeeded") -> RunReport:
    return RunReport(
        namespace="shop",
        name="web",
        dag_id="vmbackup__shop__web",
        run_id=run_id,
        consistency="none",
        result=result,  # type: ignore[arg-type]
        started_at=started,
        finished_at=started + timedelta(minutes=5),
        instances=list(vms),
    )


def good_night(day: int) -> RunReport:
    start = datetime(2026, 12, day, 2, 0, tzinfo=UTC)
    return report(
        f"night-{day}", start, vm("web-1", "us-central1-a", "READY", "READY"), vm("web-2", "us-central1-b", "READY")
    )


def failed_night(day: int) -> RunReport:
    start = datetime(2026, 12, day, 2, 0, tzinfo=UTC)
    web_1 = vm("web-1", "us-central1-a", "READY", "FAILED", error="snapshot of web-1-1 failed")
    return report(f"night-{day}", start, web_1, vm("web-2", "us-central1-b", "READY"), result="failed")


def compliance(points: RecoveryPoints, now: datetime, **changes: Any) -> dict[str, str]:
    status = recovery_point_status(policy(**changes), points, now)
    assert status is not None
    return {"policy": status.compliance, **{vm.instance: vm.compliance for vm in status.instances}}


def test_a_policy_without_rpo_has_no_recovery_point_status() -> None:
    assert recovery_point_status(policy(rpo=None), RecoveryPoints(), CREATED) is None


def test_before_any_backup_the_vms_are_pending_until_the_objective_has_passed_since_creation() -> None:
    points = RecoveryPoints()
    assert compliance(points, CREATED + timedelta(hours=25)) == {
        "policy": "Pending",
        "web-1": "Pending",
        "web-2": "Pending",
    }
    assert compliance(points, CREATED + timedelta(hours=27))["policy"] == "Breached"


def test_a_run_with_every_disk_ready_is_a_good_backup_of_the_vm_from_its_start() -> None:
    points = RecoveryPoints()
    points.observe(good_night(2), {})
    assert points.newest[("us-central1-a", "web-1")] == (datetime(2026, 12, 2, 2, 0, tzinfo=UTC), "night-2")


def test_a_vm_with_a_failed_disk_has_no_new_good_backup_but_the_other_vm_of_the_run_does() -> None:
    points = RecoveryPoints()
    points.observe(good_night(2), {})
    points.observe(failed_night(3), {})
    assert points.newest[("us-central1-a", "web-1")][1] == "night-2"
    assert points.newest[("us-central1-b", "web-2")][1] == "night-3"


def test_failing_runs_cross_the_objective_and_a_good_run_meets_it_again() -> None:
    points = RecoveryPoints()
    points.observe(good_night(2), {})
    assert compliance(points, datetime(2026, 12, 3, 3, 0, tzinfo=UTC))["policy"] == "Met"
    points.observe(failed_night(3), {})
    breached_at = datetime(2026, 12, 3, 4, 1, tzinfo=UTC)  # 26 h and a minute after night-2 started
    assert compliance(points, breached_at) == {"policy": "Breached", "web-1": "Breached", "web-2": "Met"}
    points.observe(good_night(4), {})
    assert compliance(points, datetime(2026, 12, 4, 3, 0, tzinfo=UTC))["policy"] == "Met"


def test_a_skipped_vm_is_no_good_backup() -> None:
    points = RecoveryPoints()
    skipped = vm("web-1", "us-central1-a", "READY", skipped_reason="another run holds the VM")
    points.observe(report("r1", CREATED, skipped), {})
    assert ("us-central1-a", "web-1") not in points.newest


def test_a_selector_policys_vms_are_those_its_latest_run_reported() -> None:
    selector = {"zones": ["us-central1-a"], "matchLabels": {"app": "web"}}
    points = RecoveryPoints()
    points.observe(report("r1", CREATED, vm("web-9", "us-central1-a", "READY")), {})
    assert compliance(points, CREATED + timedelta(hours=1), instances=None, selector=selector) == {
        "policy": "Met",
        "web-9": "Met",
    }


def test_the_status_carries_each_vms_newest_good_backup_and_a_restart_reads_it_back() -> None:
    state = PolicyState("shop", "web", "vmbackup__shop__web", outcome="Uploaded", policy=policy())
    state.recovery.observe(good_night(2), {})
    now = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    status = desired_status(state, None, {}, now).to_status()
    assert status["recoveryPoint"]["compliance"] == "Met"
    assert status["recoveryPoint"]["instances"][0] == {
        "instance": "web-1",
        "zone": "us-central1-a",
        "compliance": "Met",
        "newestGoodBackup": "2026-12-02T02:00:00Z",
        "run": "night-2",
    }
    assert (find_condition(status["conditions"], RPO_MET) or {}).get("status") == "True"

    restarted = PolicyState("shop", "web", "vmbackup__shop__web", outcome="Uploaded", policy=policy())
    restarted.recovery.observe(None, status)
    assert restarted.recovery.newest == state.recovery.newest


def test_the_breach_shows_in_the_condition_and_the_metric() -> None:
    state = PolicyState("shop", "web", "vmbackup__shop__web", outcome="Uploaded", policy=policy())
    state.recovery.observe(good_night(2), {})
    state.recovery.observe(failed_night(3), {})
    desired = desired_status(state, None, {}, datetime(2026, 12, 3, 9, 0, tzinfo=UTC))
    condition = find_condition(desired.to_status()["conditions"], RPO_MET) or {}
    assert (condition.get("status"), condition.get("reason")) == ("False", "Breached")
    assert "web-1 (us-central1-a)" in str(condition.get("message"))
    metrics = ControllerMetrics()
    metrics.record_recovery_points("shop", "web", desired.recovery)
    labels = {"namespace": "shop", "name": "web", "zone": "us-central1-a", "instance": "web-1"}
    assert metrics.value(RPO_BREACHED, labels) == 1
    assert metrics.value(RPO_BREACHED, {**labels, "zone": "us-central1-b", "instance": "web-2"}) == 0
    assert metrics.value("vmbackup_rpo_seconds", {"namespace": "shop", "name": "web"}) == 26 * 3600


def test_removing_rpo_removes_the_status_field_the_condition_and_the_series() -> None:
    state = PolicyState("shop", "web", "vmbackup__shop__web", outcome="Uploaded", policy=policy())
    now = CREATED + timedelta(hours=1)
    before = desired_status(state, None, {}, now).to_status()
    state.policy = policy(rpo=None)
    after = desired_status(state, None, before, now)
    assert after.to_status()["recoveryPoint"] is None
    assert find_condition(after.to_status()["conditions"], RPO_MET) is None
    metrics = ControllerMetrics()
    metrics.record_recovery_points("shop", "web", desired_status(state, None, {}, now).recovery)
    assert metrics.registry.get_sample_value("vmbackup_rpo_seconds", {"namespace": "shop", "name": "web"}) is None
