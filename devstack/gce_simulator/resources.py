"""The simulated resources: instances, disks, snapshots, instant snapshots and operations, each with its REST JSON.

Plain records: the state machines that change them live in the module of each resource (``instances``, ``disks``,
``snapshots``, ``instant_snapshots``, ``power``, ``devices``) and in ``operations``. Field names and shapes follow
the compute v1 REST reference of each resource (Instance, Disk, Snapshot, InstantSnapshot, Operation).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

from .common import API_PREFIX, fingerprint, new_id, rfc3339
from .faults import Fault

DEFAULT_SERVICE_ACCOUNT = "{number}-compute@developer.gserviceaccount.com"
# Who an operation says requested it (``Operation.user``); any service account of the project will do.
OPERATION_USER = "compute-caller@{project}.iam.gserviceaccount.com"


@dataclass
class Instance:
    project: str
    zone: str
    name: str
    status: str
    labels: dict[str, str]
    disks: list[dict[str, Any]]
    machine_type: str
    network: str
    tags: list[str]
    service_accounts: list[dict[str, Any]]
    id: str = field(default_factory=new_id)
    created: float = field(default_factory=time.time)
    baseline_status: str = "RUNNING"
    last_start: float | None = None
    last_stop: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    serial: dict[int, bytearray] = field(default_factory=dict)  # port -> the newest output (devices.py)
    serial_discarded: dict[int, int] = field(default_factory=dict)  # port -> bytes dropped from the buffer
    local_ssds: list[dict[str, Any]] = field(default_factory=list)  # attached SCRATCH disks (power.py)
    guest_flush_supported: bool = True  # simulator-side: the API exposes nothing (snapshot_rules.py)
    consumed_reservation: Reservation | None = None  # while it holds reserved capacity (reservations.py)

    @property
    def path(self) -> str:
        return f"projects/{self.project}/zones/{self.zone}/instances/{self.name}"

    @property
    def self_link(self) -> str:
        return API_PREFIX + self.path

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "compute#instance",
            "id": self.id,
            "creationTimestamp": rfc3339(self.created),
            "name": self.name,
            "description": "",
            "tags": {"items": list(self.tags), "fingerprint": fingerprint(tuple(self.tags))},
            "machineType": f"{API_PREFIX}projects/{self.project}/zones/{self.zone}/machineTypes/{self.machine_type}",
            "status": self.status,
            "zone": f"{API_PREFIX}projects/{self.project}/zones/{self.zone}",
            "canIpForward": False,
            "networkInterfaces": [
                {
                    "kind": "compute#networkInterface",
                    "network": f"{API_PREFIX}projects/{self.project}/global/networks/{self.network}",
                    "subnetwork": f"{API_PREFIX}projects/{self.project}/regions/{self.zone.rsplit('-', 1)[0]}"
                    f"/subnetworks/{self.network}",
                    "networkIP": f"10.128.0.{int(self.id) % 250 + 2}",
                    "name": "nic0",
                    "fingerprint": fingerprint(self.network),
                    "stackType": "IPV4_ONLY",
                }
            ],
            "disks": copy.deepcopy(self.disks + self.local_ssds),
            "metadata": {"kind": "compute#metadata", "fingerprint": fingerprint("metadata")},
            "serviceAccounts": copy.deepcopy(self.service_accounts),
            "selfLink": self.self_link,
            "scheduling": {"onHostMaintenance": "MIGRATE", "automaticRestart": True, "preemptible": False},
            "cpuPlatform": "Intel Broadwell" if self.status == "RUNNING" else "Unknown CPU Platform",
            "labels": dict(self.labels),
            "labelFingerprint": fingerprint(self.labels),
            "startRestricted": False,
            "deletionProtection": False,
            "fingerprint": fingerprint((self.name, self.status)),
        }
        if self.last_start is not None:
            body["lastStartTimestamp"] = rfc3339(self.last_start)
        if self.last_stop is not None:
            body["lastStopTimestamp"] = rfc3339(self.last_stop)
        if self.consumed_reservation is not None:
            consumed = self.consumed_reservation.path  # "the full resource name of the reservation" (ESTIMATE: form)
            body["resourceStatus"] = {"reservationConsumptionInfo": {"consumedReservation": consumed}}
        body.update(copy.deepcopy(self.extra))
        return body


@dataclass
class Disk:
    project: str
    zone: str
    name: str
    size_gb: int
    disk_type: str = "pd-balanced"
    labels: dict[str, str] = field(default_factory=dict)
    users: list[str] = field(default_factory=list)
    status: str = "READY"
    description: str = ""  # as disks.insert was given it
    source_snapshot: str | None = None
    source_snapshot_id: str | None = None
    source_snapshot_type: str | None = None  # STANDARD or ARCHIVE: how long RESTORING lasts (disks.py)
    id: str = field(default_factory=new_id)
    created: float = field(default_factory=time.time)
    snapshots_taken: int = 0
    guest_console: str = ""  # what its operating system prints on the serial console when booted (devices.py)
    # A regional persistent disk: ``zone`` then holds the region (the disks map is keyed by location) and
    # ``replica_zones`` its two zones.
    region: str | None = None
    replica_zones: list[str] = field(default_factory=list)
    last_instant_snapshot: float | None = None  # time.monotonic() of the last instant snapshot insert
    snapshot_times: list[float] = field(default_factory=list)  # time.monotonic() of recent snapshots (rules)

    @property
    def location(self) -> str:
        return f"regions/{self.region}" if self.region else f"zones/{self.zone}"

    @property
    def path(self) -> str:
        return f"projects/{self.project}/{self.location}/disks/{self.name}"

    @property
    def self_link(self) -> str:
        return API_PREFIX + self.path

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "compute#disk",
            "id": self.id,
            "creationTimestamp": rfc3339(self.created),
            "name": self.name,
            "description": self.description,
            "sizeGb": str(self.size_gb),
            "status": self.status,
            "selfLink": self.self_link,
            "type": f"{API_PREFIX}projects/{self.project}/{self.location}/diskTypes/{self.disk_type}",
            "labels": dict(self.labels),
            "labelFingerprint": fingerprint(self.labels),
            "users": list(self.users),
            "physicalBlockSizeBytes": "4096",
        }
        if self.region:
            body["region"] = f"{API_PREFIX}projects/{self.project}/regions/{self.region}"
            body["replicaZones"] = [f"{API_PREFIX}projects/{self.project}/zones/{z}" for z in self.replica_zones]
        else:
            body["zone"] = f"{API_PREFIX}projects/{self.project}/zones/{self.zone}"
        if self.source_snapshot:
            body["sourceSnapshot"] = self.source_snapshot
            body["sourceSnapshotId"] = self.source_snapshot_id
        return body


@dataclass
class InstantSnapshot:
    project: str
    scope: str  # "zones/Z" or "regions/R"
    name: str
    source_disk: Disk
    labels: dict[str, str]
    description: str = ""
    status: str = "CREATING"
    id: str = field(default_factory=new_id)
    created: float = field(default_factory=time.time)

    @property
    def path(self) -> str:
        return f"projects/{self.project}/{self.scope}/instantSnapshots/{self.name}"

    @property
    def self_link(self) -> str:
        return API_PREFIX + self.path

    def to_json(self) -> dict[str, Any]:
        kind = self.scope.split("/", 1)[0]
        return {
            "kind": "compute#instantSnapshot",
            "id": self.id,
            "creationTimestamp": rfc3339(self.created),
            "name": self.name,
            "description": self.description,
            "status": self.status,
            "sourceDisk": self.source_disk.self_link,
            "sourceDiskId": self.source_disk.id,
            "diskSizeGb": str(self.source_disk.size_gb),
            kind.rstrip("s"): f"{API_PREFIX}projects/{self.project}/{self.scope}",
            "labels": copy.deepcopy(self.labels),
            "labelFingerprint": fingerprint(self.labels),
            "architecture": "X86_64",
            "selfLink": self.self_link,
            "selfLinkWithId": f"{API_PREFIX}projects/{self.project}/{self.scope}/instantSnapshots/{self.id}",
            "resourceStatus": {"storageSizeBytes": str(int(self.source_disk.size_gb * 2**30 * 0.01))},
        }


@dataclass
class Snapshot:
    project: str
    name: str
    source_disk: Disk
    labels: dict[str, str]
    storage_locations: list[str]
    description: str = ""
    status: str = "CREATING"
    id: str = field(default_factory=new_id)
    created: float = field(default_factory=time.time)
    storage_bytes: int = 0
    guest_flush: bool = False
    guest_console: str = ""  # the source disk's, when the snapshot was taken
    source_instant_snapshot: InstantSnapshot | None = None
    snapshot_type: str = "STANDARD"  # or ARCHIVE (snapshots.py)

    @property
    def path(self) -> str:
        return f"projects/{self.project}/global/snapshots/{self.name}"

    @property
    def self_link(self) -> str:
        return API_PREFIX + self.path

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "compute#snapshot",
            "id": self.id,
            "creationTimestamp": rfc3339(self.created),
            "name": self.name,
            "description": self.description,
            "status": self.status,
            "sourceDisk": self.source_disk.self_link,
            "sourceDiskId": self.source_disk.id,
            "diskSizeGb": str(self.source_disk.size_gb),
            "storageBytes": str(self.storage_bytes),
            "storageBytesStatus": "UP_TO_DATE" if self.status == "READY" else "UPDATING",
            "storageLocations": list(self.storage_locations),
            "labels": dict(self.labels),
            "labelFingerprint": fingerprint(self.labels),
            "selfLink": self.self_link,
            "snapshotType": self.snapshot_type,
            "architecture": "X86_64",
            "autoCreated": False,
            "guestFlush": self.guest_flush,
        }
        if self.source_instant_snapshot is not None:
            body["sourceInstantSnapshot"] = self.source_instant_snapshot.self_link
            body["sourceInstantSnapshotId"] = self.source_instant_snapshot.id
        return body


@dataclass
class Operation:
    project: str
    zone: str | None
    operation_type: str
    target_link: str
    target_id: str
    resource_key: str | None
    name: str = ""
    id: str = field(default_factory=new_id)
    status: str = "PENDING"
    progress: int = 0
    insert_time: float = field(default_factory=time.time)
    start_time: float | None = None
    end_time: float | None = None
    error: dict[str, Any] | None = None
    fault: Fault | None = None  # operation_error to end with
    extra_seconds: float = 0.0  # slow fault
    region: str | None = None  # a regionOperations operation (zone is then None)

    @property
    def scope(self) -> str | None:
        """Key of the operation's collection: its zone, ``regions/R``, or None for global operations."""
        return f"regions/{self.region}" if self.region else self.zone

    @property
    def location(self) -> str:
        """Where its concurrent operations quota counts it: its region (a zone's), or ``global`` (quotas.py)."""
        return self.region or (self.zone.rsplit("-", 1)[0] if self.zone else "global")

    @property
    def path(self) -> str:
        if self.zone:
            return f"projects/{self.project}/zones/{self.zone}/operations/{self.name}"
        if self.region:
            return f"projects/{self.project}/regions/{self.region}/operations/{self.name}"
        return f"projects/{self.project}/global/operations/{self.name}"

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "compute#operation",
            "id": self.id,
            "name": self.name,
            "operationType": self.operation_type,
            "targetLink": self.target_link,
            "targetId": self.target_id,
            "status": self.status,
            "user": OPERATION_USER.format(project=self.project),
            "progress": self.progress,
            "insertTime": rfc3339(self.insert_time),
            "selfLink": API_PREFIX + self.path,
        }
        if self.zone:
            body["zone"] = f"{API_PREFIX}projects/{self.project}/zones/{self.zone}"
        if self.region:
            body["region"] = f"{API_PREFIX}projects/{self.project}/regions/{self.region}"
        if self.start_time is not None:
            body["startTime"] = rfc3339(self.start_time)
        if self.end_time is not None:
            body["endTime"] = rfc3339(self.end_time)
        if self.error is not None:
            body["error"] = copy.deepcopy(self.error["error"])
            body["httpErrorStatusCode"] = self.error["httpErrorStatusCode"]
            body["httpErrorMessage"] = self.error["httpErrorMessage"]
        return body


@dataclass
class Reservation:
    """A single-project, on-demand reservation of ``count`` VMs of one machine type in one zone (reservations.py)."""

    project: str
    zone: str
    name: str
    count: int
    machine_type: str
    specific_reservation_required: bool = False
    description: str = ""
    status: str = "READY"
    consumers: list[str] = field(default_factory=list)  # self links of the instances holding its capacity
    id: str = field(default_factory=new_id)
    created: float = field(default_factory=time.time)

    @property
    def path(self) -> str:
        return f"projects/{self.project}/zones/{self.zone}/reservations/{self.name}"

    @property
    def self_link(self) -> str:
        return API_PREFIX + self.path

    @property
    def free(self) -> int:
        return self.count - len(self.consumers)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "compute#reservation",
            "id": self.id,
            "creationTimestamp": rfc3339(self.created),
            "name": self.name,
            "description": self.description,
            "zone": f"{API_PREFIX}projects/{self.project}/zones/{self.zone}",
            "selfLink": self.self_link,
            "specificReservation": {
                "count": str(self.count),
                "inUseCount": str(len(self.consumers)),
                "assuredCount": str(self.count),
                "instanceProperties": {"machineType": self.machine_type},
            },
            "specificReservationRequired": self.specific_reservation_required,
            "status": self.status,
            "shareSettings": {"shareType": "LOCAL"},
        }
