"""Rules a standard snapshot of a disk must pass: per-disk snapshot frequency and guest flush support.

Sources:

- "You can snapshot your disks at most once every 10 minutes ... at most 6 requests in 60 minutes" ("About disk
  snapshots", https://cloud.google.com/compute/docs/disks/snapshots). A too frequent snapshot is accepted and its
  operation ends DONE with ``RESOURCE_OPERATION_RATE_EXCEEDED`` "Operation rate exceeded for resource '...'. Too
  frequent operations from the source resource." (reported: googleapis/python-compute#279,
  kubernetes-sigs/gcp-compute-persistent-disk-csi-driver#1847; NOT VERIFIED: ``httpErrorStatusCode`` 429). The
  snapshot is then not created. ``Profile.snapshot_min_interval_seconds`` (600), ``snapshot_rate_window_seconds``
  (3600) and ``snapshots_per_rate_window`` (6); the fast profile scales the two durations down (0.05 s / 0.3 s)
  so that tests can still take consecutive snapshots of one disk.
- guestFlush: application-consistent snapshots need the guest environment with snapshots enabled in the guest
  agent's configuration ("Create Linux application consistent snapshots",
  https://cloud.google.com/compute/docs/disks/creating-linux-application-consistent-pd-snapshots). The API exposes
  no field saying whether a VM's agent has it, so support is a simulator-side seed (``add_instance(...,
  guest_flush_supported=False)``). NOT VERIFIED: the operation's error code and wording when the guest cannot
  flush; the simulator ends the operation DONE with ``INVALID_USAGE`` "Guest flush is not supported ..." (reported:
  bacalhau-project/bacalhau#294 shows the snapshot failing).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .profile import Profile

if TYPE_CHECKING:
    from .resources import Disk, Instance

RATE_CODE = "RESOURCE_OPERATION_RATE_EXCEEDED"
GUEST_FLUSH_CODE = "INVALID_USAGE"


def frequency_error(profile: Profile, disk: Disk, now: float | None = None) -> tuple[int, str, str] | None:
    """The operation error for a snapshot of ``disk`` now, or None (then the attempt is recorded)."""
    moment = time.monotonic() if now is None else now
    window = profile.scaled(profile.snapshot_rate_window_seconds)
    interval = profile.scaled(profile.snapshot_min_interval_seconds)
    disk.snapshot_times[:] = [t for t in disk.snapshot_times if moment - t < max(window, interval)]
    too_soon = bool(disk.snapshot_times) and moment - disk.snapshot_times[-1] < interval
    in_window = sum(1 for t in disk.snapshot_times if moment - t < window)
    if too_soon or in_window >= profile.snapshots_per_rate_window:
        message = (
            f"Operation rate exceeded for resource '{disk.path}'. Too frequent operations from the source resource."
        )
        return (429, RATE_CODE, message)
    disk.snapshot_times.append(moment)
    return None


def guest_flush_error(disk: Disk, users: list[Instance]) -> tuple[int, str, str] | None:
    """guestFlush=true needs every running VM of the disk to support it."""
    for instance in users:
        if instance.status != "TERMINATED" and not instance.guest_flush_supported:
            message = (
                f"Guest flush is not supported for instance '{instance.path}': enable snapshots in the guest "
                "agent's configuration, or create the snapshot without guestFlush."
            )
            return (400, GUEST_FLUSH_CODE, message)
    return None
