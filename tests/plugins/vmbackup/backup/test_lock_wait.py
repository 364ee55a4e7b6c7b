"""The lock wait before anything goes down: wait for a held VM, give up on it with its holder named, never run late."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vmbackup.backup.lock_wait import lock_verdict
from vmbackup.model.identifiers import Lock
from vmbackup.model.policy import BackupPolicy, parse_policy

SLOT = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
NIGHTLY = Lock(run="rnightly", expires=2_000_000_000, kind="policy", namespace="team-a", name="nightly", run_id="r1")


def policy(**spec: object) -> BackupPolicy:
    return parse_policy(
        "team-a",
        "hourly",
        {
            "project": "shop-prod",
            "instances": [{"name": "web-1", "zone": "us-central1-a"}],
            "timeouts": {"lockWaitSeconds": 60},
        }
        | spec,
    )


def test_a_batch_with_no_vm_held_goes_on_at_once() -> None:
    verdict = lock_verdict(policy(), {"a/web-1": None, "a/web-2": None}, 0, False, SLOT, SLOT)
    assert (verdict.wait, verdict.skips) == (False, {})


def test_a_held_vm_is_waited_for_within_lock_wait_seconds() -> None:
    verdict = lock_verdict(
        policy(), {"a/web-1": NIGHTLY, "a/web-2": None}, 59, True, SLOT, SLOT + timedelta(seconds=59)
    )
    assert verdict.wait


def test_past_lock_wait_seconds_only_the_held_vm_is_skipped_naming_its_holder_and_the_field() -> None:
    verdict = lock_verdict(
        policy(), {"a/web-1": NIGHTLY, "a/web-2": None}, 61, True, SLOT, SLOT + timedelta(seconds=61)
    )
    assert not verdict.wait
    assert list(verdict.skips) == ["a/web-1"]
    assert verdict.skips["a/web-1"].startswith("held by policy team-a/nightly run r1; waited 61 s")
    assert "spec.timeouts.lockWaitSeconds: 60 s" in verdict.skips["a/web-1"]


def test_a_wait_that_reaches_the_starting_deadline_skips_every_vm_it_delayed() -> None:
    late = SLOT + timedelta(seconds=1000)  # stop mode's default deadline is 900 s
    verdict = lock_verdict(policy(), {"a/web-1": NIGHTLY, "a/web-2": None}, 50, True, SLOT, late)
    assert not verdict.wait
    assert set(verdict.skips) == {"a/web-1", "a/web-2"}
    assert "spec.startingDeadlineSeconds" in verdict.skips["a/web-2"]
    assert verdict.skips["a/web-2"].startswith("waited 50 s for another run's lock")


def test_a_late_first_look_skips_the_held_vm_but_not_a_free_one() -> None:
    """The run's start was checked by the resolve step; only a wait can make a free VM late."""
    late = SLOT + timedelta(seconds=1000)
    verdict = lock_verdict(policy(), {"a/web-1": NIGHTLY, "a/web-2": None}, 0, False, SLOT, late)
    assert list(verdict.skips) == ["a/web-1"]


def test_a_run_asked_for_by_hand_has_no_deadline() -> None:
    verdict = lock_verdict(policy(), {"a/web-1": NIGHTLY}, 30, True, None, SLOT + timedelta(days=1))
    assert verdict.wait


def test_lock_wait_seconds_zero_skips_a_held_vm_on_the_first_look() -> None:
    verdict = lock_verdict(policy(timeouts={"lockWaitSeconds": 0}), {"a/web-1": NIGHTLY}, 0, False, SLOT, SLOT)
    assert not verdict.wait
    assert "spec.timeouts.lockWaitSeconds: 0 s" in verdict.skips["a/web-1"]
