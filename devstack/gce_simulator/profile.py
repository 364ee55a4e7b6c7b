"""Latency profiles for the Compute Engine simulator.

Every duration below is in seconds of *Compute Engine* time and is multiplied by ``time_scale`` before the
simulator waits for it, so ``Profile.realistic(time_scale=0.01)`` keeps every ratio of the real service while a
benchmark runs 100x faster. ``wait_cap`` (the ``operations.wait`` long-poll cap) and fault ``extra_seconds`` are
scaled the same way.

Sources for ``Profile.realistic()`` (looked up with the project's reference search; figures the docs do not give
are marked ESTIMATE and were chosen to be typical rather than best or worst case):

- Instance states PROVISIONING -> STAGING -> RUNNING, STOPPING -> TERMINATED: "Instance life cycle",
  https://cloud.google.com/compute/docs/instances/instance-life-cycle . The docs give no stop/start durations.
  ``stop_seconds`` = 30: ESTIMATE; a clean guest shutdown of a small Linux VM is typically 20-40 s, bounded by
  Compute Engine's shutdown period before a forced power-off. ``start_seconds`` = 20 (STAGING): ESTIMATE, the time
  until the API reports RUNNING (the guest then still boots).
- Operations and their ``wait`` long-poll: zoneOperations.wait / globalOperations.wait "waits for no more than the
  default deadline (2 minutes) and then returns the current state of the operation, which might be DONE or still in
  progress" (compute v1 REST reference, zoneOperations/wait). Hence ``wait_cap`` = 120.
- Snapshot states: CREATING ("Snapshot creation is in progress"), UPLOADING ("Snapshot is being uploaded"), READY,
  FAILED, DELETING (compute v1 Snapshot.status enum reference). Modelled: the disk only has to be quiesced while
  CREATING (once UPLOADING, the point-in-time copy is taken and the disk may be written again), and the
  createSnapshot operation is DONE only when the snapshot is READY (or FAILED). NOT VERIFIED: the reference search
  did not turn up Google's wording of the UPLOADING rule verbatim; it is the project's premise.
- Snapshots are incremental: "The first successful snapshot of a persistent disk is a full snapshot that contains
  all the data ... The second snapshot only contains any new data or modified data" ("Creating persistent disk
  snapshots", https://cloud.google.com/compute/docs/disks/create-snapshots). Upload time therefore scales with the
  disk size for the first snapshot of a disk and with ``incremental_fraction`` of it afterwards.
  ``snapshot_creating_seconds`` = 10, ``snapshot_upload_seconds_per_gb`` = 1.0 (so ~3.5 min for a 200 GB first
  snapshot) and ``incremental_fraction`` = 0.1: ESTIMATE; Google publishes no throughput figure.
- "You can snapshot your disks at most once every 10 minutes ... at most 6 requests in 60 minutes" ("About disk
  snapshots", https://cloud.google.com/compute/docs/disks/snapshots): ``snapshot_min_interval_seconds`` = 600,
  ``snapshot_rate_window_seconds`` = 3600, ``snapshots_per_rate_window`` = 6, enforced by snapshot_rules.py. The
  fast profile scales both durations down (0.05 s and 0.3 s) so consecutive test runs can snapshot one disk.
- Rate quotas (quotas.py): a window of ``rate_quota_window_seconds`` = 60 ("Google enforces rate quotas at a
  per-minute interval for each group", "Compute Engine rate quotas", https://cloud.google.com/compute/api-quota),
  1 s in the fast profile; limits per group from that page unless ``rate_quota_limits`` overrides them.
  ``concurrent_operations_limit`` = 1000 per project: ESTIMATE ("Compute Engine concurrent operation quotas",
  https://cloud.google.com/compute/operations-quota, gives the error, not the figure in the copy read).
- "Compute Engine has a minimum retention period of 1 hour and a maximum of 14 days for completed operations"
  (paraphrased, "View Compute Engine operations", operation retention period,
  https://cloud.google.com/compute/docs/instances/viewing-compute-operations): ``operation_retention_seconds`` =
  3600, the minimum (the unkindest); 300 s in the fast profile, where Airflow's own overhead is not scaled and a
  DAG run takes real tens of seconds (a shorter retention would purge operations a real run still holds well
  within the hour). Then ``get``/``wait`` answer 404; the control plane's ``operations()`` still lists them.
- A disk created from a snapshot is ``RESTORING`` ("Source data is being copied into the disk", Disk.status enum)
  for ``disk_restoring_seconds`` = 10 (ESTIMATE) after its insert operation is DONE; meanwhile it cannot be
  attached or snapshotted (400 ``resourceNotReady``; which calls Google refuses is NOT VERIFIED). From an ARCHIVE
  snapshot it is RESTORING ``archive_restoring_factor`` = 3 times as long: "Standard snapshots have faster data
  recovery times than archive snapshots. Archive snapshots have the longest data recovery times" ("About archive and
  standard disk snapshots", https://cloud.google.com/compute/docs/disks/snapshots); the factor is an ESTIMATE, Google
  gives no figure.
- ``api_duration_scale`` multiplies the durations the API itself carries (a graceful shutdown's ``maxDuration``,
  a stockout's length; power.py): 1 in the realistic profile, 0.001 in the fast one (10 minutes -> 0.6 s).
- Instant snapshots (instant_snapshots.py for the API): "Instant snapshots capture data at a specific point in time"
  and restore "in minutes" ("About instant snapshots", https://cloud.google.com/compute/docs/disks/instant-snapshots);
  the docs give no creation time. ``instant_snapshot_creating_seconds`` = 2 and ``instant_snapshot_delete_seconds``
  = 2: ESTIMATE ("created in seconds"; no data is copied, the snapshot stays on the disk's storage).
  ``instant_snapshot_min_interval_seconds`` = 30 and ``instant_snapshots_per_disk`` = 32 are documented limits ("A
  disk can't have more than 32 instant snapshots"; "create a new instant snapshot at most once every 30 seconds",
  https://cloud.google.com/compute/docs/troubleshooting/troubleshooting-instant-snapshots); the interval is scaled
  like every duration (the fast profile keeps its ratio to the other fast durations), the count is not.
- A standard snapshot from an instant snapshot (snapshots.insert with ``sourceInstantSnapshot``) walks the same
  CREATING -> UPLOADING -> READY timings as one from a disk and joins the disk's incremental chain ("the new standard
  ... snapshot is stored as an incremental resource, in the existing snapshot chain for the disk", "Create standard
  snapshots from instant snapshots", https://cloud.google.com/compute/docs/disks/convert-instant-snapshot). The
  CREATING part no longer holds the VM down: the point in time was fixed by the instant snapshot.
- ``api_latency`` = 0.15 s per request: ESTIMATE for a Compute Engine REST round trip from a Composer worker in the
  same region. ``operation_pending_seconds`` = 1: ESTIMATE (operations are briefly PENDING before RUNNING).
- Restore (``disk_create_*``, ``instance_provisioning_seconds``): ESTIMATE; a disk from a snapshot is usable within
  tens of seconds (data is lazily restored), so it scales only weakly with size.
- ``attach_disk_seconds`` / ``detach_disk_seconds`` = 5: ESTIMATE (the attachDisk / detachDisk operations are
  typically DONE within seconds; the docs give no figure). ``guest_boot_seconds`` = 30: ESTIMATE, from RUNNING
  until a small Linux guest has printed its login prompt on the serial console ("the guest then still boots",
  above; the docs give no figure).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# The environment variables a client under test reads its quota window from (``Profile.quota_window_env``); the
# project that embeds the simulator registers its own (this repository: devstack/backup_invariants.py).
QUOTA_WINDOW_ENV_NAMES: list[str] = []


@dataclass(frozen=True)
class Profile:
    """Durations in seconds of simulated time; each is multiplied by ``time_scale``."""

    name: str = "custom"
    api_latency: float = 0.0
    operation_pending_seconds: float = 0.0
    stop_seconds: float = 0.0
    start_seconds: float = 0.0
    set_labels_seconds: float = 0.0
    snapshot_creating_seconds: float = 0.0
    snapshot_upload_base_seconds: float = 0.0
    snapshot_upload_seconds_per_gb: float = 0.0
    incremental_fraction: float = 1.0
    snapshot_delete_seconds: float = 0.0
    disk_create_base_seconds: float = 0.0
    disk_create_seconds_per_gb: float = 0.0
    instance_provisioning_seconds: float = 0.0
    instance_staging_seconds: float = 0.0
    attach_disk_seconds: float = 0.0
    detach_disk_seconds: float = 0.0
    guest_boot_seconds: float = 0.0
    instant_snapshot_creating_seconds: float = 0.0
    instant_snapshot_delete_seconds: float = 0.0
    instant_snapshot_min_interval_seconds: float = 0.0
    instant_snapshots_per_disk: int = 32
    wait_cap: float = 120.0
    time_scale: float = 1.0
    # Stricter behaviours (sources: quotas.py, power.py, snapshot_rules.py, and the docstring above)
    rate_quota_window_seconds: float = 60.0
    rate_quota_limits: dict[str, int] = field(default_factory=dict)  # group -> calls per window (quotas.py)
    concurrent_operations_limit: int | None = 1000
    snapshot_min_interval_seconds: float = 600.0
    snapshot_rate_window_seconds: float = 3600.0
    snapshots_per_rate_window: int = 6
    disk_restoring_seconds: float = 0.0
    archive_restoring_factor: float = 3.0  # RESTORING from an ARCHIVE snapshot lasts this many times longer
    operation_retention_seconds: float = 3600.0
    api_duration_scale: float = 1.0  # multiplies durations the API carries (graceful maxDuration, stockout length)

    @classmethod
    def fast(cls, **overrides: Any) -> Profile:
        """Near-zero latencies for tests: everything finishes within milliseconds but still walks every state."""
        base = cls(
            name="fast",
            api_latency=0.0,
            operation_pending_seconds=0.002,
            stop_seconds=0.02,
            start_seconds=0.02,
            set_labels_seconds=0.002,
            snapshot_creating_seconds=0.02,
            snapshot_upload_base_seconds=0.01,
            snapshot_upload_seconds_per_gb=0.001,
            incremental_fraction=0.5,
            snapshot_delete_seconds=0.005,
            disk_create_base_seconds=0.01,
            disk_create_seconds_per_gb=0.0001,
            instance_provisioning_seconds=0.01,
            instance_staging_seconds=0.01,
            attach_disk_seconds=0.005,
            detach_disk_seconds=0.005,
            guest_boot_seconds=0.01,
            instant_snapshot_creating_seconds=0.004,
            instant_snapshot_delete_seconds=0.002,
            instant_snapshot_min_interval_seconds=0.02,
            wait_cap=120.0,
            time_scale=1.0,
            rate_quota_window_seconds=1.0,
            snapshot_min_interval_seconds=0.05,
            snapshot_rate_window_seconds=0.3,
            disk_restoring_seconds=0.02,
            operation_retention_seconds=300.0,
            api_duration_scale=0.001,
        )
        return dataclasses.replace(base, **overrides)

    @classmethod
    def realistic(cls, time_scale: float = 1.0, **overrides: Any) -> Profile:
        """Compute Engine as measured or documented; see the module docstring for each figure's source."""
        base = cls(
            name="realistic",
            api_latency=0.15,
            operation_pending_seconds=1.0,
            stop_seconds=30.0,
            start_seconds=20.0,
            set_labels_seconds=2.0,
            snapshot_creating_seconds=10.0,
            snapshot_upload_base_seconds=20.0,
            snapshot_upload_seconds_per_gb=1.0,
            incremental_fraction=0.1,
            snapshot_delete_seconds=5.0,
            disk_create_base_seconds=15.0,
            disk_create_seconds_per_gb=0.05,
            instance_provisioning_seconds=10.0,
            instance_staging_seconds=20.0,
            attach_disk_seconds=5.0,
            detach_disk_seconds=5.0,
            guest_boot_seconds=30.0,
            instant_snapshot_creating_seconds=2.0,
            instant_snapshot_delete_seconds=2.0,
            instant_snapshot_min_interval_seconds=30.0,
            instant_snapshots_per_disk=32,
            wait_cap=120.0,
            time_scale=time_scale,
            rate_quota_window_seconds=60.0,
            concurrent_operations_limit=1000,
            snapshot_min_interval_seconds=600.0,
            snapshot_rate_window_seconds=3600.0,
            snapshots_per_rate_window=6,
            disk_restoring_seconds=10.0,
            operation_retention_seconds=3600.0,
            api_duration_scale=1.0,
        )
        return dataclasses.replace(base, **overrides)

    @classmethod
    def named(cls, name: str, time_scale: float = 1.0) -> Profile:
        if name == "fast":
            return cls.fast(time_scale=time_scale)
        if name == "realistic":
            return cls.realistic(time_scale=time_scale)
        raise ValueError(f"unknown profile {name!r} (fast | realistic)")

    def scaled(self, seconds: float) -> float:
        return max(0.0, seconds * self.time_scale)

    def quota_window_env(self) -> dict[str, str]:
        """The rate quota window (scaled) under each name of ``QUOTA_WINDOW_ENV_NAMES``: for a client under test
        that waits a quota refusal out to the next window, so that it waits for the simulator's, not a real minute."""
        window = str(self.scaled(self.rate_quota_window_seconds))
        return dict.fromkeys(QUOTA_WINDOW_ENV_NAMES, window)

    def snapshot_upload_seconds(self, disk_size_gb: int, first: bool) -> float:
        data_gb = disk_size_gb if first else disk_size_gb * self.incremental_fraction
        return self.snapshot_upload_base_seconds + self.snapshot_upload_seconds_per_gb * data_gb

    def disk_create_seconds(self, size_gb: int) -> float:
        return self.disk_create_base_seconds + self.disk_create_seconds_per_gb * size_gb

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown profile fields: {sorted(unknown)}")
        return cls(**data)
