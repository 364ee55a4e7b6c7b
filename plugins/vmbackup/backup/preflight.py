"""Checks before anything stops (issue 23): what a run asks of each VM, at resolve time, beyond its disks.

Each check reads only the instance resource the resolve step already holds (instances.get / instances.list), so it
costs no API call. A VM a check refuses is skipped and reported, never stopped to fail:

- Local SSD. An attached disk of ``type`` SCRATCH is a Local SSD. ``instances.stop`` needs ``discardLocalSsd`` for
  such a VM ("This property is required if the instance has any attached Local SSD disks", StopInstanceRequest,
  compute v1; ``gcloud compute instances stop --discard-local-ssd``), and discarding loses its data; a Local SSD is
  not a persistent disk and has no snapshot ("About Local SSD disks", https://cloud.google.com/compute/docs/disks/
  local-ssd). Compute Engine can also keep the data over a stop (``discardLocalSsd=false``, with costs and limits
  per that page): this product does not use that, so without spec.stop.discardLocalSsd the VM is skipped.
- Reservations. A stopped VM gives its capacity back; starting it again can fail with ZONE_RESOURCE_POOL_EXHAUSTED
  for as long as the zone has none ("Troubleshooting resource availability errors", https://cloud.google.com/
  compute/docs/troubleshooting/troubleshooting-resource-availability), unless a reservation holds that capacity
  ("Reservations of Compute Engine zonal resources", https://cloud.google.com/compute/docs/instances/reservations-
  overview). The API shows a consumed reservation in two ways: ``reservationAffinity.consumeReservationType``
  SPECIFIC_RESERVATION (such a VM runs only on its reservation: "If you can successfully create a VM that targets
  a specific reservation, the VM consumes the specified reservation", "Troubleshooting reservation consumption",
  https://cloud.google.com/compute/docs/troubleshooting/troubleshooting-reservation-consumption), and
  ``resourceStatus.reservationConsumptionInfo.consumedReservation`` (output only, where Compute Engine fills it).
  ANY_RESERVATION (the default) guarantees nothing: the same page says which VMs consume a reservation cannot be
  tracked, so such a VM counts as consuming none unless its resourceStatus names one.
- guestFlush. Windows guests flush through VSS ("Create a Windows application consistent disk snapshot",
  https://cloud.google.com/compute/docs/instances/windows/creating-windows-persistent-disk-snapshot; the boot disk
  carries guest OS feature WINDOWS). A Linux guest flushes only when snapshots are enabled in its guest agent's
  configuration ("Create Linux application consistent disk snapshots", https://cloud.google.com/compute/docs/disks/
  creating-linux-application-consistent-pd-snapshots), which no API field shows: for those VMs the check can only
  warn. A guest that cannot flush fails the snapshot; Compute Engine says "You can only use guest-flush on disks
  attached to instances with supported operating systems" (quoted in bacalhau-project/bacalhau#294).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from vmbackup.model.policy import PolicySpec
from vmbackup.model.report import InstanceResult
from vmbackup.model.stop_options import DISCARD_LOCAL_SSD_FIELD, REQUIRE_RESERVATION_FIELD

LOCAL_SSD_TYPE = "SCRATCH"  # AttachedDisk.type of a Local SSD
SPECIFIC_RESERVATION = "SPECIFIC_RESERVATION"
WINDOWS_FEATURE = "WINDOWS"  # GuestOsFeature.type of a Windows boot disk
CONSISTENCY_FIELD = "spec.consistency"
_GUEST_FLUSH_FAILURE = re.compile(r"guest[- ]?flush", re.IGNORECASE)

GUEST_FLUSH_UNVERIFIED = (
    "guestFlush needs the guest to flush: a Linux guest only with snapshots enabled in its guest agent's "
    "configuration, which the Compute Engine API does not show, so this run could not check it"
)
GUEST_FLUSH_FAILED_NOTE = (
    f"the guest could not flush for the snapshot ({CONSISTENCY_FIELD} is guestFlush): on Linux enable snapshots in "
    "the guest agent's configuration (Google: 'Create Linux application consistent disk snapshots'), on Windows "
    f"check the VSS agent; or set {CONSISTENCY_FIELD} to stop (consistent, the VM stops) or none (crash-consistent). "
    "Every run fails this way until one of these changes"
)


@dataclass(frozen=True)
class Verdict:
    """What the checks decided for one VM: skip it (why), stop it discarding its Local SSD, or a warning."""

    skip: str | None = None
    discard_local_ssd: bool = False
    warning: str | None = None


def local_ssds(instance: Any) -> list[str]:
    """Device names of the instance's Local SSDs (attached disks of type SCRATCH)."""
    return [d.device_name or f"#{d.index}" for d in instance.disks if d.type_ == LOCAL_SSD_TYPE]


def consumed_reservation(instance: Any) -> str | None:
    """The reservation the instance consumes as the API shows it, or None when it shows none (see the module)."""
    consumed = instance.resource_status.reservation_consumption_info.consumed_reservation
    if consumed:
        return str(consumed).rstrip("/").rsplit("/", 1)[-1]
    affinity = instance.reservation_affinity
    if affinity.consume_reservation_type == SPECIFIC_RESERVATION:
        return ", ".join(v.rstrip("/").rsplit("/", 1)[-1] for v in affinity.values) or SPECIFIC_RESERVATION
    return None


def guest_flush_supported(instance: Any) -> bool | None:
    """True for a Windows guest (VSS); None when the API cannot tell (a Linux guest's agent setting is not shown)."""
    for disk in instance.disks:
        if disk.boot and any(f.type_ == WINDOWS_FEATURE for f in disk.guest_os_features):
            return True
    return None


def is_guest_flush_failure(message: str) -> bool:
    """Whether an error (Compute Engine's words, or the simulator's) is a snapshot refused for its guest flush."""
    return bool(_GUEST_FLUSH_FAILURE.search(message))


def note_guest_flush_failures(consistency: str, instances: list[InstanceResult]) -> None:
    """Name the fix on each VM of a guestFlush run whose error says the guest could not flush: Compute Engine's own
    message names neither the policy field nor that every run will fail the same way."""
    if consistency != "guestFlush":
        return
    for result in instances:
        if result.error and is_guest_flush_failure(result.error):
            result.note = f"{result.note}; {GUEST_FLUSH_FAILED_NOTE}" if result.note else GUEST_FLUSH_FAILED_NOTE


def check(spec: PolicySpec, instance: Any) -> Verdict:
    """Run the checks that apply to the policy's consistency mode."""
    if spec.consistency == "guestFlush":
        return Verdict(warning=None if guest_flush_supported(instance) else GUEST_FLUSH_UNVERIFIED)
    from vmbackup.compute.hook import STOPPED_STATUSES  # google-cloud-compute: not at DAG parse time

    if spec.consistency != "stop" or instance.status in STOPPED_STATUSES:
        return Verdict()  # the run neither stops nor starts it: nothing to discard, no start to fail
    problems = []
    ssds = local_ssds(instance)
    if ssds and not spec.stop.discard_local_ssd:
        problems.append(_local_ssd_reason(ssds))
    if spec.stop.require_reservation and consumed_reservation(instance) is None:
        problems.append(_reservation_reason(instance))
    if problems:
        return Verdict(skip="; and ".join(problems))
    return Verdict(discard_local_ssd=bool(ssds))


def _local_ssd_reason(ssds: list[str]) -> str:
    return (
        f"the VM has Local SSD {', '.join(ssds)}: stopping it discards the Local SSD's data, which no snapshot holds. "
        f"Set {DISCARD_LOCAL_SSD_FIELD}: true to stop it and lose that data, or back it up without stopping it "
        f"({CONSISTENCY_FIELD}: guestFlush or none; the Local SSD is still not in the backup)"
    )


def _reservation_reason(instance: Any) -> str:
    kind = instance.reservation_affinity.consume_reservation_type or "unset (ANY_RESERVATION)"
    return (
        f"the VM consumes no reservation Compute Engine shows (reservationAffinity {kind}): after the stop its start "
        "can fail for hours in a zone stockout (ZONE_RESOURCE_POOL_EXHAUSTED), and "
        f"{REQUIRE_RESERVATION_FIELD} is true. Give the VM a specific reservation (reservationAffinity "
        f"{SPECIFIC_RESERVATION}), or set {REQUIRE_RESERVATION_FIELD} to false to accept the risk"
    )
