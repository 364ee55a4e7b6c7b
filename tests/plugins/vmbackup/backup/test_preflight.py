"""The checks before anything stops, on instances as Compute Engine's API returns them (parsed by the real client)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.cloud import compute_v1

from vmbackup.backup import preflight
from vmbackup.model.policy import PolicySpec, parse_policy
from vmbackup.model.report import InstanceResult

ZONE = "us-central1-a"
BOOT = {
    "type": "PERSISTENT",
    "boot": True,
    "deviceName": "persistent-disk-0",
    "source": f"https://www.googleapis.com/compute/v1/projects/demo-project/zones/{ZONE}/disks/vm-1",
}
LOCAL_SSD = {"type": "SCRATCH", "deviceName": "local-ssd-0", "interface": "NVME", "autoDelete": True}
RESERVATION = "projects/demo-project/zones/us-central1-a/reservations/db-capacity"


def instance(*disks: dict[str, Any], affinity: str | None = None, **fields: Any) -> compute_v1.Instance:
    body: dict[str, Any] = {"name": "vm-1", "status": "RUNNING", "disks": list(disks or [BOOT]), **fields}
    if affinity:
        body["reservationAffinity"] = {"consumeReservationType": affinity}
    return compute_v1.Instance.from_json(json.dumps(body), ignore_unknown_fields=True)


def spec(**fields: Any) -> PolicySpec:
    body = {"project": "demo-project", "instances": [{"name": "vm-1", "zone": ZONE}], **fields}
    return parse_policy("team-a", "p", body).spec


def test_a_local_ssd_in_stop_mode_is_skipped_naming_the_switch_the_loss_and_the_other_modes() -> None:
    verdict = preflight.check(spec(), instance(BOOT, LOCAL_SSD))
    assert verdict.skip is not None
    assert "local-ssd-0" in verdict.skip
    assert "spec.stop.discardLocalSsd: true" in verdict.skip
    assert "lose that data" in verdict.skip
    assert "guestFlush or none" in verdict.skip


def test_with_discard_local_ssd_the_vm_is_stopped_discarding_it() -> None:
    verdict = preflight.check(spec(stop={"discardLocalSsd": True}), instance(BOOT, LOCAL_SSD))
    assert (verdict.skip, verdict.discard_local_ssd) == (None, True)


def test_discard_is_asked_only_of_a_vm_that_has_a_local_ssd() -> None:
    verdict = preflight.check(spec(stop={"discardLocalSsd": True}), instance(BOOT))
    assert (verdict.skip, verdict.discard_local_ssd) == (None, False)


def test_a_local_ssd_is_no_reason_to_skip_a_vm_that_is_not_stopped() -> None:
    assert preflight.check(spec(consistency="none"), instance(BOOT, LOCAL_SSD)).skip is None


@pytest.mark.parametrize("affinity", ["NO_RESERVATION", "ANY_RESERVATION", None])
def test_required_reservation_skips_a_vm_that_shows_none_naming_the_field_and_the_fix(affinity: str | None) -> None:
    verdict = preflight.check(spec(stop={"requireReservation": True}), instance(affinity=affinity))
    assert verdict.skip is not None
    assert "spec.stop.requireReservation" in verdict.skip
    assert "ZONE_RESOURCE_POOL_EXHAUSTED" in verdict.skip
    assert "SPECIFIC_RESERVATION" in verdict.skip


def test_a_specific_reservation_counts_as_consumed() -> None:
    vm = instance(affinity="SPECIFIC_RESERVATION")
    vm.reservation_affinity.values.append("db-capacity")
    assert preflight.consumed_reservation(vm) == "db-capacity"
    assert preflight.check(spec(stop={"requireReservation": True}), vm).skip is None


def test_any_reservation_counts_only_when_the_resource_status_names_the_one_consumed() -> None:
    vm = instance(
        affinity="ANY_RESERVATION", resourceStatus={"reservationConsumptionInfo": {"consumedReservation": RESERVATION}}
    )
    assert preflight.consumed_reservation(vm) == "db-capacity"
    assert preflight.check(spec(stop={"requireReservation": True}), vm).skip is None


def test_without_required_reservation_a_vm_without_one_is_stopped() -> None:
    assert preflight.check(spec(), instance(affinity="NO_RESERVATION")).skip is None


def test_local_ssd_and_missing_reservation_are_both_named() -> None:
    verdict = preflight.check(spec(stop={"requireReservation": True}), instance(BOOT, LOCAL_SSD))
    assert verdict.skip is not None
    assert "discardLocalSsd" in verdict.skip
    assert "requireReservation" in verdict.skip


def test_a_windows_guest_flushes_through_vss_without_a_warning() -> None:
    windows = {**BOOT, "guestOsFeatures": [{"type": "VIRTIO_SCSI_MULTIQUEUE"}, {"type": "WINDOWS"}]}
    assert preflight.guest_flush_supported(instance(windows)) is True
    assert preflight.check(spec(consistency="guestFlush"), instance(windows)).warning is None


def test_a_linux_guest_flush_cannot_be_checked_so_it_is_a_warning_not_a_skip() -> None:
    verdict = preflight.check(spec(consistency="guestFlush"), instance(BOOT))
    assert (verdict.skip, verdict.warning) == (None, preflight.GUEST_FLUSH_UNVERIFIED)


@pytest.mark.parametrize(
    "message",
    [
        "INVALID_USAGE: You can only use guest-flush on disks attached to instances with supported operating systems.",
        "INVALID_USAGE: Guest flush is not supported for instance 'projects/p/zones/z/instances/vm-1'",
    ],
)
def test_a_snapshot_refused_for_its_guest_flush_is_recognised(message: str) -> None:
    assert preflight.is_guest_flush_failure(message)


def test_a_rate_limited_snapshot_is_no_guest_flush_failure() -> None:
    assert not preflight.is_guest_flush_failure("RESOURCE_OPERATION_RATE_EXCEEDED: Operation rate exceeded")


def failed(error: str) -> InstanceResult:
    return InstanceResult(instance="vm-1", zone=ZONE, error=error)


def test_a_guest_flush_failure_in_the_report_names_the_consistency_field_and_the_fixes() -> None:
    results = [failed("data-1: snapshot was not created; INVALID_USAGE: You can only use guest-flush on disks ...")]
    preflight.note_guest_flush_failures("guestFlush", results)
    assert results[0].note == preflight.GUEST_FLUSH_FAILED_NOTE
    assert "spec.consistency" in preflight.GUEST_FLUSH_FAILED_NOTE
    assert "guest agent's configuration" in preflight.GUEST_FLUSH_FAILED_NOTE


def test_other_failures_get_no_guest_flush_note() -> None:
    results = [failed("data-1: snapshot is FAILED")]
    preflight.note_guest_flush_failures("guestFlush", results)
    assert results[0].note is None


def test_a_vm_already_stopped_is_not_checked_for_what_stopping_it_would_do() -> None:
    stopped = instance(BOOT, LOCAL_SSD, affinity="NO_RESERVATION", status="TERMINATED")
    verdict = preflight.check(spec(stop={"requireReservation": True}), stopped)
    assert (verdict.skip, verdict.discard_local_ssd) == (None, False)
