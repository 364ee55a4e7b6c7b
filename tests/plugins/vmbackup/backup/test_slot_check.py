"""The first step's decision: late, outside the window, or already backed up -> the slot touches no VM.

Against the Compute Engine simulator through the real hook; the only calls a missed slot makes are reads.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vmbackup.backup.slot_check import missed_slot, slot_label, too_late
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.model import labels as vmlabels
from vmbackup.model.policy import STOP_MODE_STARTING_DEADLINE_SECONDS, BackupPolicy, parse_policy

PROJECT = "demo-project"
ZONE = "us-central1-c"
VM = "wordpress-1-vm"
SLOT = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
SPEC: dict[str, Any] = {"project": PROJECT, "instances": [{"name": VM, "zone": ZONE}], "schedule": "0 2 * * *"}


@pytest.fixture
def hook(gce_sim: Any) -> ComputeEngineHook:
    gce_sim.reset()
    gce_sim.seed_classic(PROJECT)
    return ComputeEngineHook(endpoint=gce_sim.base_url, max_attempts=4, backoff_base_seconds=0.001)


def policy(**spec: Any) -> BackupPolicy:
    return parse_policy("team-a", "wordpress", {**SPEC, **spec})


def writes(gce_sim: Any) -> list[str]:
    return [c["method"] for c in gce_sim.calls if not c["method"].endswith((".get", ".list"))]


def test_a_stop_mode_run_within_the_default_deadline_goes_on(hook: ComputeEngineHook) -> None:
    at_deadline = SLOT + timedelta(seconds=STOP_MODE_STARTING_DEADLINE_SECONDS)

    assert missed_slot(policy(), SLOT, at_deadline, hook) is None


def test_a_stop_mode_run_one_second_past_the_default_deadline_is_missed_as_late(
    hook: ComputeEngineHook, gce_sim: Any
) -> None:
    late = SLOT + timedelta(seconds=STOP_MODE_STARTING_DEADLINE_SECONDS + 1)
    gce_sim.clear_calls()

    missed = missed_slot(policy(), SLOT, late, hook)

    assert missed is not None
    assert missed.reason == "Late"
    assert "spec.startingDeadlineSeconds (900 s by default in stop mode)" in missed.message
    assert gce_sim.calls == []  # decided before any Compute Engine call


def test_an_explicit_deadline_wins_and_crash_consistent_runs_have_none_by_default(hook: ComputeEngineHook) -> None:
    seven_hours = SLOT + timedelta(hours=7)

    assert missed_slot(policy(startingDeadlineSeconds=300), SLOT, SLOT + timedelta(seconds=301), hook) is not None
    assert missed_slot(policy(consistency="none"), SLOT, seven_hours, hook) is None


def test_a_run_outside_the_window_is_missed_and_its_edges_hold(hook: ComputeEngineHook) -> None:
    windowed = policy(
        schedule="0 3 * * *",  # 03:00 Paris is SLOT (02:00 UTC in November)
        timezone="Europe/Paris",
        startingDeadlineSeconds=86400,
        maintenanceWindow={"start": "03:00", "durationMinutes": 60},
    )

    assert missed_slot(windowed, SLOT, SLOT, hook) is None  # 03:00 Paris: the window's first minute
    assert missed_slot(windowed, SLOT, SLOT + timedelta(minutes=59, seconds=59), hook) is None
    outside = missed_slot(windowed, SLOT, SLOT + timedelta(minutes=60), hook)
    assert outside is not None
    assert outside.reason == "OutsideWindow"
    assert "04:00 Europe/Paris, outside spec.maintenanceWindow (03:00 for 60 min)" in outside.message


def test_a_slot_whose_snapshots_exist_is_missed_as_already_backed_up(hook: ComputeEngineHook, gce_sim: Any) -> None:
    labels = {
        vmlabels.MANAGED_BY: vmlabels.MANAGED_BY_VALUE,
        vmlabels.POLICY_NAMESPACE: "team-a",
        vmlabels.POLICY_NAME: "wordpress",
        vmlabels.SLOT: slot_label(SLOT),
    }
    ref = hook.create_snapshot(
        PROJECT, ZONE, VM, "wordpress-1-vm-slot", labels=labels, storage_location=None, guest_flush=False
    )
    assert ref is not None
    hook.wait_done(ref, 60)
    gce_sim.clear_calls()

    missed = missed_slot(policy(), SLOT, SLOT + timedelta(seconds=5), hook)
    other_slot = missed_slot(policy(), SLOT + timedelta(days=1), SLOT + timedelta(days=1, seconds=5), hook)

    assert missed is not None
    assert missed.reason == "AlreadyBackedUp"
    assert "wordpress-1-vm-slot" in missed.message
    assert other_slot is None
    assert writes(gce_sim) == []  # only reads


def test_the_slot_label_is_a_valid_label_value() -> None:
    assert slot_label(SLOT) == "20261125t0200z"


# -- too_late: asked again by a stop step that waited for another run's lock ------------------------------------


def test_a_wait_may_end_in_a_stop_until_the_deadline() -> None:
    assert too_late(policy(startingDeadlineSeconds=300), SLOT, SLOT + timedelta(seconds=300)) is None


def test_a_wait_past_the_deadline_may_stop_no_vm() -> None:
    late = too_late(policy(startingDeadlineSeconds=300), SLOT, SLOT + timedelta(seconds=301))
    assert late is not None
    assert late.reason == "Late"


def test_a_wait_past_the_maintenance_window_may_stop_no_vm() -> None:
    windowed = policy(maintenanceWindow={"start": "02:00", "durationMinutes": 10}, startingDeadlineSeconds=3600)
    assert too_late(windowed, SLOT, SLOT + timedelta(minutes=9)) is None
    closed = too_late(windowed, SLOT, SLOT + timedelta(minutes=10))
    assert closed is not None
    assert closed.reason == "OutsideWindow"
