"""The simulated Compute Engine: resources, operations with timed state machines, faults, calls and invariants.

Everything is guarded by one ``threading.Condition``. A scheduler thread applies timed transitions (instance
STOPPING -> TERMINATED, snapshot CREATING -> UPLOADING -> READY, operation RUNNING -> DONE ...) and notifies the
condition, which is what ``operations.wait`` long-polls on. A resource with an operation in flight refuses a
second mutating call at once with 400 ``resourceNotReady`` (errors.py), as Compute Engine does; a DONE operation
is purged after ``Profile.operation_retention_seconds``. Instance power states live in power.py, the rate and
concurrent operation quotas in quotas.py, the snapshot frequency and guestFlush rules in snapshot_rules.py.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import heapq
import itertools
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from vmbackup.model import labels as vm_labels

from . import devices, quotas, snapshot_rules
from .errors import ApiError, not_found, resource_not_ready, stockout_error
from .faults import Fault
from .filters import FilterError, compile_filter
from .profile import Profile

if TYPE_CHECKING:
    from .instant_snapshots import InstantSnapshot

API_PREFIX = "https://www.googleapis.com/compute/v1/"
DEFAULT_SERVICE_ACCOUNT = "{number}-compute@developer.gserviceaccount.com"
OPERATION_USER = "vmbackup-composer@{project}.iam.gserviceaccount.com"

# Statuses in which an instance is, or may soon be, writing to its disks.
INSTANCE_ACTIVE = {"PROVISIONING", "STAGING", "RUNNING", "STOPPING", "SUSPENDING", "REPAIRING"}


__all__ = ["ApiError", "World", "not_found"]


def rfc3339(epoch: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if epoch is None else epoch, tz=UTC)
    return moment.isoformat(timespec="milliseconds")


def fingerprint(data: Any) -> str:
    digest = hashlib.sha256(repr(sorted(data.items()) if isinstance(data, dict) else data).encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def _new_id() -> str:
    return str(random.randint(10**18, 2**63 - 1))


_RESOURCE_REF = re.compile(
    r"(?:.*?/)?(?:projects/(?P<project>[^/]+)/)?(?:zones/(?P<zone>[^/]+)/|regions/(?P<region>[^/]+)/|global/)?"
    r"(?P<collection>disks|snapshots|instances|instantSnapshots)/(?P<name>[^/?]+)$"
)


def parse_ref(ref: str) -> dict[str, str | None]:
    """Full URL or partial reference (projects/p/zones/z/disks/d, regions/r/disks/d, global/snapshots/s, a name)."""
    match = _RESOURCE_REF.match(ref)
    if not match:
        return {"project": None, "zone": None, "region": None, "collection": None, "name": ref.rsplit("/", 1)[-1]}
    return match.groupdict()


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
    id: str = field(default_factory=_new_id)
    created: float = field(default_factory=time.time)
    baseline_status: str = "RUNNING"
    last_start: float | None = None
    last_stop: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    serial: dict[int, bytearray] = field(default_factory=dict)  # port -> the newest output (devices.py)
    serial_discarded: dict[int, int] = field(default_factory=dict)  # port -> bytes dropped from the buffer
    local_ssds: list[dict[str, Any]] = field(default_factory=list)  # attached SCRATCH disks (power.py)
    guest_flush_supported: bool = True  # simulator-side: the API exposes nothing (snapshot_rules.py)

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
    source_snapshot: str | None = None
    source_snapshot_id: str | None = None
    id: str = field(default_factory=_new_id)
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
class Snapshot:
    project: str
    name: str
    source_disk: Disk
    labels: dict[str, str]
    storage_locations: list[str]
    description: str = ""
    status: str = "CREATING"
    id: str = field(default_factory=_new_id)
    created: float = field(default_factory=time.time)
    storage_bytes: int = 0
    guest_flush: bool = False
    guest_console: str = ""  # the source disk's, when the snapshot was taken
    source_instant_snapshot: InstantSnapshot | None = None

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
            "snapshotType": "STANDARD",
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
    id: str = field(default_factory=_new_id)
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


_HTTP_REASON_PHRASES = {
    400: "BAD REQUEST",
    403: "FORBIDDEN",
    404: "NOT FOUND",
    409: "CONFLICT",
    429: "TOO MANY REQUESTS",
    503: "SERVICE UNAVAILABLE",
}


class World:
    """All simulated state. Public methods take the lock themselves; ``_``-methods expect it held."""

    def __init__(self, profile: Profile | None = None) -> None:
        self.profile = profile or Profile.fast()
        self.cond = threading.Condition()
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._op_seq = itertools.count(1)
        self._epoch = 0  # bumped by reset(): timers of an older epoch are dropped
        self._running = False
        self._thread: threading.Thread | None = None
        self._clear()

    def _clear(self) -> None:
        self.instances: dict[tuple[str, str, str], Instance] = {}
        self.disks: dict[tuple[str, str, str], Disk] = {}
        self.snapshots: dict[tuple[str, str], Snapshot] = {}
        # (project, "zones/Z" or "regions/R", name)
        self.instant_snapshots: dict[tuple[str, str, str], InstantSnapshot] = {}
        self.operations: dict[tuple[str, str | None, str], Operation] = {}
        self.zones: dict[str, set[str]] = {}
        self.faults: list[Fault] = []
        self.calls: list[dict[str, Any]] = []
        self.violations: list[dict[str, Any]] = []
        self._busy: dict[str, deque[Callable[[], None]]] = {}
        self.rate_quotas = quotas.RateQuotas()
        self.stockouts: dict[str, float] = {}  # zone -> time.monotonic() the stockout ends (power.py)
        self._events.clear()
        self._fault_ids = itertools.count(1)

    # ----------------------------------------------------------------------------------------- scheduler --
    def start(self) -> None:
        with self.cond:
            if self._running:
                return
            self._running = True
        self._thread = threading.Thread(target=self._run_scheduler, name="gce-sim-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self.cond:
            self._running = False
            self.cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._running

    def _run_scheduler(self) -> None:
        with self.cond:
            while self._running:
                now = time.monotonic()
                fired = False
                while self._events and self._events[0][0] <= now:
                    _, _, callback = heapq.heappop(self._events)
                    callback()
                    fired = True
                if fired:
                    self.cond.notify_all()
                timeout = (self._events[0][0] - time.monotonic()) if self._events else None
                if timeout is None or timeout > 0:
                    self.cond.wait(timeout)

    def _after(self, seconds: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` (under the lock) after ``seconds`` of simulated time (scaled)."""
        epoch = self._epoch

        def guarded() -> None:
            if epoch == self._epoch:
                callback()

        due = time.monotonic() + self.profile.scaled(seconds)
        heapq.heappush(self._events, (due, next(self._seq), guarded))
        self.cond.notify_all()

    # ------------------------------------------------------------------------------------------ seeding --
    def add_disk(
        self,
        project: str,
        zone: str,
        name: str,
        *,
        size_gb: int = 10,
        disk_type: str = "pd-balanced",
        labels: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        with self.cond:
            if (project, zone, name) in self.disks:
                raise ValueError(f"disk {project}/{zone}/{name} already exists")
            disk = Disk(project, zone, name, size_gb=size_gb, disk_type=disk_type, labels=dict(labels or {}))
            self.disks[(project, zone, name)] = disk
            self.zones.setdefault(project, set()).add(zone)
            return disk.to_json()

    def add_instance(
        self,
        project: str,
        zone: str,
        name: str,
        *,
        labels: dict[str, str] | None = None,
        disks: list[Any] | None = None,
        status: str = "RUNNING",
        machine_type: str = "e2-medium",
        tags: list[str] | None = None,
        network: str = "default",
    ) -> dict[str, Any]:
        """Seed an instance. ``disks``: names (or dicts ``{name, size_gb, boot, device_name, disk_type}``) of disks
        in the same zone, created if missing; the first is the boot disk. Default: one 10 GB boot disk named like
        the instance. A dict with ``region`` (and optionally ``replica_zone``) attaches a regional persistent disk,
        served by regionDisks.get and snapshotted through regionInstantSnapshots or snapshots.insert."""
        with self.cond:
            if (project, zone, name) in self.instances:
                raise ValueError(f"instance {project}/{zone}/{name} already exists")
            specs: list[dict[str, Any]] = []
            for index, spec in enumerate(disks if disks is not None else [name]):
                entry = {"name": spec} if isinstance(spec, str) else dict(spec)
                entry.setdefault("boot", index == 0)
                specs.append(entry)
            instance = Instance(
                project=project,
                zone=zone,
                name=name,
                status=status,
                labels=dict(labels or {}),
                disks=[],
                machine_type=machine_type,
                network=network,
                tags=list(tags or []),
                service_accounts=[
                    {
                        "email": DEFAULT_SERVICE_ACCOUNT.format(number=abs(hash(project)) % 10**12),
                        "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
                    }
                ],
                baseline_status=status,
            )
            for index, spec in enumerate(specs):
                region = spec.get("region")
                key = (project, region or zone, spec["name"])
                disk = self.disks.get(key)
                if disk is None:
                    disk = Disk(
                        project,
                        region or zone,
                        spec["name"],
                        size_gb=int(spec.get("size_gb", 10)),
                        disk_type=spec.get("disk_type", "pd-balanced"),
                        guest_console=devices.DEFAULT_GUEST_CONSOLE if spec["boot"] else "",
                        region=region,
                        replica_zones=[zone, *(z for z in [spec.get("replica_zone", f"{region}-f")] if z != zone)]
                        if region
                        else [],
                    )
                    self.disks[key] = disk
                if disk.users:
                    raise ValueError(f"disk {spec['name']} is already attached to {disk.users}")
                disk.users.append(instance.self_link)
                boot = bool(spec["boot"]) and not region
                instance.disks.append(self._attached_disk(disk, index, boot, spec.get("device_name")))
            if status == "RUNNING":
                instance.last_start = time.time()
            self.instances[(project, zone, name)] = instance
            self.zones.setdefault(project, set()).add(zone)
            return instance.to_json()

    @staticmethod
    def _attached_disk(disk: Disk, index: int, boot: bool, device_name: str | None) -> dict[str, Any]:
        return {
            "kind": "compute#attachedDisk",
            "type": "PERSISTENT",
            "mode": "READ_WRITE",
            "source": disk.self_link,
            "deviceName": device_name or (disk.name if not boot else "persistent-disk-0"),
            "index": index,
            "boot": boot,
            "autoDelete": boot,
            "interface": "SCSI",
            "diskSizeGb": str(disk.size_gb),
        }

    def seed_classic(self, project: str) -> None:
        """The tutorial's VM plus a few labelled VMs for selector policies."""
        self.add_instance(project, "us-central1-c", "wordpress-1-vm", labels={"app": "wordpress"}, tags=["http-server"])
        self.add_instance(
            project, "us-central1-a", "web-1", labels={"app": "shop", "tier": "web"}, tags=["http-server"]
        )
        self.add_instance(
            project, "us-central1-b", "web-2", labels={"app": "shop", "tier": "web"}, tags=["http-server"]
        )
        self.add_instance(project, "us-central1-a", "app-1", labels={"app": "shop", "tier": "app"})
        self.add_instance(
            project,
            "us-central1-a",
            "db-1",
            labels={"app": "shop", "tier": "db"},
            disks=[{"name": "db-1", "size_gb": 20}, {"name": "db-1-data", "size_gb": 100, "device_name": "data"}],
            machine_type="n2-standard-4",
        )

    def reset(self, profile: Profile | None = None) -> None:
        with self.cond:
            self._epoch += 1
            self._clear()
            if profile is not None:
                self.profile = profile
            self.cond.notify_all()

    def set_profile(self, profile: Profile) -> None:
        with self.cond:
            self.profile = profile

    # ------------------------------------------------------------------------------------- inspection --
    def instance(self, project: str, zone: str, name: str) -> dict[str, Any]:
        with self.cond:
            return self._instance(project, zone, name).to_json()

    def disk(self, project: str, zone: str, name: str) -> dict[str, Any]:
        with self.cond:
            return self._disk(project, zone, name).to_json()

    def region_disk(self, project: str, region: str, name: str) -> dict[str, Any]:
        with self.cond:
            disk = self.disks.get((project, region, name))
            if disk is None or disk.region != region:
                raise not_found(f"projects/{project}/regions/{region}/disks/{name}")
            return disk.to_json()

    def snapshot_list(self, project: str) -> list[dict[str, Any]]:
        with self.cond:
            return [s.to_json() for (p, _), s in sorted(self.snapshots.items()) if p == project]

    def operation_list(self) -> list[dict[str, Any]]:
        with self.cond:
            return [op.to_json() for op in self.operations.values()]

    def call_counts(self) -> dict[str, int]:
        with self.cond:
            return dict(Counter(call["method"] for call in self.calls))

    def in_flight(self) -> int:
        with self.cond:
            return sum(1 for op in self.operations.values() if op.status != "DONE")

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until no operation is PENDING or RUNNING; False on timeout."""
        with self.cond:
            return self.cond.wait_for(
                lambda: all(op.status == "DONE" for op in self.operations.values()), timeout=timeout
            )

    def inject(self, fault: Fault) -> Fault:
        with self.cond:
            fault.id = fault.id or f"fault-{next(self._fault_ids)}"
            self.faults.append(fault)
            return fault

    def clear_faults(self) -> None:
        with self.cond:
            self.faults.clear()

    def _instance(self, project: str, zone: str, name: str) -> Instance:
        instance = self.instances.get((project, zone, name))
        if instance is None:
            raise not_found(f"projects/{project}/zones/{zone}/instances/{name}")
        return instance

    def _disk(self, project: str, zone: str, name: str) -> Disk:
        disk = self.disks.get((project, zone, name))
        if disk is None:
            raise not_found(f"projects/{project}/zones/{zone}/disks/{name}")
        return disk

    def _snapshot(self, project: str, name: str) -> Snapshot:
        snapshot = self.snapshots.get((project, name))
        if snapshot is None:
            raise not_found(f"projects/{project}/global/snapshots/{name}")
        return snapshot

    # -------------------------------------------------------------------------- faults and recording --
    def match_faults(self, method: str, resource_name: str | None) -> list[Fault]:
        """The faults that apply to this call (each consumed once). At most one http_error, listed first."""
        with self.cond:
            applied: list[Fault] = []
            for fault in self.faults:
                if not fault.matches(method, resource_name) or fault.lets_through():
                    continue
                if fault.action == "http_error":
                    fault.consume()
                    return [fault]
                if any(f.action == fault.action for f in applied):
                    continue
                fault.consume()
                applied.append(fault)
            return applied

    def record(self, call: dict[str, Any]) -> None:
        with self.cond:
            self.calls.append(call)

    def _violate(self, kind: str, message: str, **details: Any) -> dict[str, Any]:
        violation = {"kind": kind, "message": message, "time": time.time(), **details}
        self.violations.append(violation)
        return violation

    # ---------------------------------------------------------------------------------- operations --
    def _new_operation(
        self,
        project: str,
        zone: str | None,
        operation_type: str,
        target_link: str,
        target_id: str,
        resource_key: str | None,
        faults: list[Fault],
        region: str | None = None,
    ) -> Operation:
        op = Operation(project, zone, operation_type, target_link, target_id, resource_key, region=region)
        op.name = f"operation-{int(time.time() * 1000)}-{next(self._op_seq):06d}-{random.getrandbits(32):08x}"
        for fault in faults:
            if fault.action == "operation_error":
                op.fault = fault
            elif fault.action == "slow":
                op.extra_seconds += fault.extra_seconds
        self.operations[(project, op.scope, op.name)] = op
        return op

    def check_not_busy(self, resource_link: str) -> None:
        """A resource with an operation in flight refuses another at once: 400 resourceNotReady (errors.py)."""
        if resource_link in self._busy:
            raise resource_not_ready(resource_link.removeprefix(API_PREFIX))

    def _run_serialized(self, op: Operation, body: Callable[[], None]) -> None:
        """Start ``body`` (the op's first RUNNING step) after the PENDING delay; refused if the resource is busy."""

        def begin() -> None:
            op.status = "RUNNING"
            op.start_time = time.time()
            op.progress = 0
            body()

        def scheduled() -> None:
            self._after(self.profile.operation_pending_seconds, begin)

        key = op.resource_key
        if key is None:
            scheduled()
            return
        if key in self._busy:
            del self.operations[(op.project, op.scope, op.name)]
            self.check_not_busy(key)
        self._busy[key] = deque()
        scheduled()

    def _finish(self, op: Operation, error: tuple[int, str, str] | None = None) -> None:
        """DONE, with ``error`` = (http status, code, message) if failed; frees the resource for the next op."""
        op.status = "DONE"
        op.progress = 100
        op.end_time = time.time()
        if error is not None:
            status, code, message = error
            op.error = {
                "error": {"errors": [{"code": code, "message": message}]},
                "httpErrorStatusCode": status,
                "httpErrorMessage": _HTTP_REASON_PHRASES.get(status, "ERROR"),
            }
        self._busy.pop(op.resource_key or "", None)
        # Purged after the retention period, then get/wait answer 404 (profile.py: operation retention)
        key = (op.project, op.scope, op.name)
        self._after(self.profile.operation_retention_seconds, lambda: self._purge(key))
        self.cond.notify_all()

    def _purge(self, key: tuple[str, str | None, str]) -> None:
        self.operations.pop(key, None)

    def _fail_with_fault(self, op: Operation) -> bool:
        """If the op carries an operation_error fault, finish it failed (after its slow delay) and say so."""
        fault = op.fault
        if fault is None:
            return False
        error = (fault.status, fault.error_code, fault.error_message() if fault.message else "Operation failed.")
        self._after(op.extra_seconds, lambda: self._finish(op, error))
        return True

    def _operation(self, project: str, scope: str | None, name: str) -> Operation:
        """``scope``: a zone, ``regions/R``, or None for global operations."""
        op = self.operations.get((project, scope, name))
        if op is None:
            where = "global" if not scope else scope if scope.startswith("regions/") else f"zones/{scope}"
            raise not_found(f"projects/{project}/{where}/operations/{name}")
        return op

    def get_operation(self, project: str, zone: str | None, name: str) -> dict[str, Any]:
        with self.cond:
            op = self._operation(project, zone, name)
            return op.to_json()

    def wait_operation(self, project: str, zone: str | None, name: str) -> dict[str, Any]:
        """Long-poll until DONE or the profile's wait cap (scaled); returns the operation as it then is."""
        with self.cond:
            op = self._operation(project, zone, name)
            epoch = self._epoch
            self.cond.wait_for(
                lambda: op.status == "DONE" or not self._running or epoch != self._epoch,
                timeout=self.profile.scaled(self.profile.wait_cap),
            )
            return op.to_json()

    # -------------------------------------------------------------------------------- instances API --
    def list_instances(self, project: str, zone: str, filter_text: str | None) -> list[dict[str, Any]]:
        predicate = _compile(filter_text)
        with self.cond:
            items = [i.to_json() for (p, z, _), i in sorted(self.instances.items()) if p == project and z == zone]
        return [item for item in items if predicate(item)]

    def aggregated_instances(self, project: str, filter_text: str | None) -> dict[str, list[dict[str, Any]]]:
        predicate = _compile(filter_text)
        with self.cond:
            zones = sorted(self.zones.get(project, set()))
            everything = [(z, i.to_json()) for (p, z, _), i in sorted(self.instances.items()) if p == project]
        scoped: dict[str, list[dict[str, Any]]] = {f"zones/{z}": [] for z in zones}
        for zone, item in everything:
            if predicate(item):
                scoped[f"zones/{zone}"].append(item)
        return scoped

    def set_instance_labels(
        self, project: str, zone: str, name: str, body: dict[str, Any], faults: list[Fault]
    ) -> dict[str, Any]:
        with self.cond:
            instance = self._instance(project, zone, name)
            supplied = body.get("labelFingerprint")
            if supplied != fingerprint(instance.labels):
                raise ApiError(
                    412,
                    "conditionNotMet",
                    "Labels fingerprint either invalid or resource labels have changed",
                )
            new_labels = {str(k): str(v) for k, v in (body.get("labels") or {}).items()}
            validate_labels(new_labels)
            op = self._new_operation(project, zone, "setLabels", instance.self_link, instance.id, None, faults)

            def run() -> None:
                if self._fail_with_fault(op):
                    return
                self._after(self.profile.set_labels_seconds + op.extra_seconds, lambda: self._finish(op))

            if op.fault is None:
                instance.labels = new_labels  # visible at once; the fingerprint changes with it
            self._run_serialized(op, run)
            return op.to_json()

    def insert_instance(self, project: str, zone: str, body: dict[str, Any], faults: list[Fault]) -> dict[str, Any]:
        with self.cond:
            name = body.get("name")
            if not name:
                raise ApiError(400, "required", "Required field 'resource.name' not specified")
            if (project, zone, name) in self.instances:
                raise ApiError(
                    409,
                    "alreadyExists",
                    f"The resource 'projects/{project}/zones/{zone}/instances/{name}' already exists",
                )
            attach: list[tuple[Disk, dict[str, Any]]] = []
            new_disks: list[Disk] = []
            for index, spec in enumerate(body.get("disks") or []):
                if spec.get("source"):
                    ref = parse_ref(spec["source"])
                    disk = self._disk(ref["project"] or project, ref["zone"] or zone, str(ref["name"]))
                    devices.check_shareable(self, disk, str(spec.get("mode") or "READ_WRITE"))
                    if disk.status != "READY":
                        raise ApiError(400, "resourceNotReady", f"The resource '{disk.path}' is not ready")
                elif spec.get("initializeParams", {}).get("sourceSnapshot"):
                    params = spec["initializeParams"]
                    snapshot = self._ready_snapshot(project, params["sourceSnapshot"])
                    disk_name = params.get("diskName") or (name if index == 0 else f"{name}-{index}")
                    if (project, zone, disk_name) in self.disks:
                        raise ApiError(
                            409,
                            "alreadyExists",
                            f"The resource 'projects/{project}/zones/{zone}/disks/{disk_name}' already exists",
                        )
                    disk = Disk(
                        project,
                        zone,
                        disk_name,
                        size_gb=int(params.get("diskSizeGb") or snapshot.source_disk.size_gb),
                        source_snapshot=snapshot.self_link,
                        source_snapshot_id=snapshot.id,
                        guest_console=snapshot.guest_console,
                    )
                    new_disks.append(disk)
                else:
                    raise ApiError(400, "invalid", "Each disk needs 'source' or 'initializeParams.sourceSnapshot'")
                attach.append((disk, spec))
            if not attach:
                raise ApiError(400, "invalid", "At least one disk should be attached to the instance")
            labels = {str(k): str(v) for k, v in (body.get("labels") or {}).items()}
            validate_labels(labels)
            network = "default"
            for nic in body.get("networkInterfaces") or []:
                if nic.get("network"):
                    network = str(nic["network"]).rsplit("/", 1)[-1]
            instance = Instance(
                project=project,
                zone=zone,
                name=name,
                status="PROVISIONING",
                labels=labels,
                disks=[],
                machine_type=str(body.get("machineType", "e2-medium")).rsplit("/", 1)[-1],
                network=network,
                tags=list((body.get("tags") or {}).get("items") or []),
                service_accounts=list(body.get("serviceAccounts") or []),
                baseline_status="RUNNING",
            )
            for disk in new_disks:
                self.disks[(project, zone, disk.name)] = disk
            for index, (disk, spec) in enumerate(attach):
                disk.users.append(instance.self_link)
                instance.disks.append(
                    self._attached_disk(disk, index, bool(spec.get("boot", index == 0)), spec.get("deviceName"))
                )
                instance.disks[-1]["mode"] = str(spec.get("mode") or "READ_WRITE")
            self.instances[(project, zone, name)] = instance
            self.zones.setdefault(project, set()).add(zone)
            op = self._new_operation(
                project, zone, "insert", instance.self_link, instance.id, instance.self_link, faults
            )

            def body_fn() -> None:
                stocked_out = time.monotonic() < self.stockouts.get(zone, 0.0)  # power.py
                if op.fault is not None or stocked_out:
                    self._remove_instance(instance)
                    for disk in new_disks:
                        self.disks.pop((project, zone, disk.name), None)
                    if not self._fail_with_fault(op):
                        self._finish(op, stockout_error(project, zone))
                    return

                def staging() -> None:
                    instance.status = "STAGING"

                    def running() -> None:
                        instance.status = "RUNNING"
                        instance.last_start = time.time()
                        devices.booted(self, instance)
                        self._finish(op)

                    self._after(self.profile.instance_staging_seconds, running)

                self._after(self.profile.instance_provisioning_seconds + op.extra_seconds, staging)

            self._run_serialized(op, body_fn)
            return op.to_json()

    def delete_instance(self, project: str, zone: str, name: str, faults: list[Fault]) -> dict[str, Any]:
        """STOPPING, then gone; its disks are detached and those with ``autoDelete`` deleted."""
        with self.cond:
            instance = self._instance(project, zone, name)
            op = self._new_operation(
                project, zone, "delete", instance.self_link, instance.id, instance.self_link, faults
            )

            def body() -> None:
                if self._fail_with_fault(op):
                    return
                instance.status = "STOPPING"

                def gone() -> None:
                    self._remove_instance(instance)
                    for attached in instance.disks:
                        if attached.get("autoDelete"):
                            self.disks.pop((project, zone, str(parse_ref(attached["source"])["name"])), None)
                    self._finish(op)

                self._after(self.profile.stop_seconds + op.extra_seconds, gone)

            self._run_serialized(op, body)
            return op.to_json()

    def delete_disk(self, project: str, zone: str, name: str, faults: list[Fault]) -> dict[str, Any]:
        with self.cond:
            disk = self._disk(project, zone, name)
            if disk.users:
                raise ApiError(
                    400,
                    "resourceInUseByAnotherResource",
                    f"The disk resource '{disk.path}' is already being used by '{disk.users[0]}'",
                )
            op = self._new_operation(project, zone, "delete", disk.self_link, disk.id, disk.self_link, faults)

            def body() -> None:
                if self._fail_with_fault(op):
                    return
                disk.status = "DELETING"

                def gone() -> None:
                    if self.disks.get((project, zone, name)) is disk:
                        del self.disks[(project, zone, name)]
                    # "Instant snapshots of a disk are deleted when the disk is deleted" (About instant snapshots)
                    for key, instant in list(self.instant_snapshots.items()):
                        if instant.source_disk is disk:
                            del self.instant_snapshots[key]
                    self._finish(op)

                self._after(self.profile.snapshot_delete_seconds + op.extra_seconds, gone)

            self._run_serialized(op, body)
            return op.to_json()

    def _remove_instance(self, instance: Instance) -> None:
        for attached in instance.disks:
            ref = parse_ref(attached["source"])
            disk = self.disks.get((instance.project, ref["region"] or instance.zone, str(ref["name"])))
            if disk is not None and instance.self_link in disk.users:
                disk.users.remove(instance.self_link)
        self.instances.pop((instance.project, instance.zone, instance.name), None)

    # ------------------------------------------------------------------------------------ disks API --
    def list_disks(self, project: str, zone: str, filter_text: str | None) -> list[dict[str, Any]]:
        predicate = _compile(filter_text)
        with self.cond:
            items = [d.to_json() for (p, z, _), d in sorted(self.disks.items()) if p == project and z == zone]
        return [item for item in items if predicate(item)]

    def create_snapshot(
        self, project: str, zone: str, disk_name: str, body: dict[str, Any], guest_flush: bool, faults: list[Fault]
    ) -> dict[str, Any]:
        """disks.createSnapshot: a zonal operation on the disk."""
        with self.cond:
            disk = self._ready_disk(self._disk(project, zone, disk_name))
            snapshot = self._new_snapshot(project, disk, body, guest_flush, None)
            op = self._new_operation(project, zone, "createSnapshot", disk.self_link, disk.id, disk.self_link, faults)
            self._take_snapshot(op, snapshot)
            return op.to_json()

    def insert_snapshot(self, project: str, body: dict[str, Any], faults: list[Fault]) -> dict[str, Any]:
        """snapshots.insert from ``sourceDisk`` (zonal or regional) or ``sourceInstantSnapshot``: a global operation.

        From an instant snapshot the point in time is already fixed, so the disk need not be quiesced; the new
        snapshot joins the disk's incremental chain ("Create standard snapshots from instant snapshots",
        https://cloud.google.com/compute/docs/disks/convert-instant-snapshot).
        """
        with self.cond:
            source_disk, source_instant = body.get("sourceDisk"), body.get("sourceInstantSnapshot")
            if bool(source_disk) == bool(source_instant):
                raise ApiError(
                    400,
                    "invalid",
                    "Exactly one of 'resource.sourceDisk' or 'resource.sourceInstantSnapshot' is required",
                )
            instant = None
            if source_instant:
                instant = self.instant_snapshot_ref(project, str(source_instant))
                if instant.status != "READY":
                    raise ApiError(400, "resourceNotReady", f"The resource '{instant.path}' is not ready")
                disk = instant.source_disk
            else:
                disk = self._ready_disk(self.disk_ref(project, str(source_disk)))
            key = instant.self_link if instant else disk.self_link
            self.check_not_busy(key)
            snapshot = self._new_snapshot(project, disk, body, bool(body.get("guestFlush")), instant)
            op = self._new_operation(project, None, "insert", snapshot.self_link, snapshot.id, key, faults)
            self._take_snapshot(op, snapshot)
            return op.to_json()

    def _new_snapshot(
        self,
        project: str,
        disk: Disk,
        body: dict[str, Any],
        guest_flush: bool,
        instant: InstantSnapshot | None,
    ) -> Snapshot:
        name = body.get("name")
        if not name:
            raise ApiError(400, "required", "Required field 'resource.name' not specified")
        check_name(name)
        if (project, name) in self.snapshots:
            raise ApiError(
                409, "alreadyExists", f"The resource 'projects/{project}/global/snapshots/{name}' already exists"
            )
        snap_labels = {str(k): str(v) for k, v in (body.get("labels") or {}).items()}
        validate_labels(snap_labels)
        snapshot = Snapshot(
            project=project,
            name=name,
            source_disk=disk,
            labels=snap_labels,
            storage_locations=list(body.get("storageLocations") or [disk.zone.rsplit("-", 2)[0]]),
            description=str(body.get("description") or ""),
            guest_flush=guest_flush,
            guest_console=disk.guest_console,
            source_instant_snapshot=instant,
        )
        self._check_snapshot_invariants(disk, snapshot)
        self.snapshots[(project, name)] = snapshot
        return snapshot

    def _ready_disk(self, disk: Disk) -> Disk:
        """A snapshot source must be READY (not RESTORING) and free of other operations."""
        if disk.status != "READY":
            raise resource_not_ready(disk.path)
        self.check_not_busy(disk.self_link)
        return disk

    def _snapshot_refused(self, op: Operation, snapshot: Snapshot) -> bool:
        """Frequency and guest flush rules (snapshot_rules.py): a refused snapshot is not created."""
        disk = snapshot.source_disk
        error = None
        if snapshot.guest_flush:
            error = snapshot_rules.guest_flush_error(disk, self._instances_using(disk))
        if error is None and snapshot.source_instant_snapshot is None:
            error = snapshot_rules.frequency_error(self.profile, disk)
        if error is None:
            return False
        if self.snapshots.get((snapshot.project, snapshot.name)) is snapshot:
            del self.snapshots[(snapshot.project, snapshot.name)]
        self._finish(op, error)
        return True

    def _take_snapshot(self, op: Operation, snapshot: Snapshot) -> None:
        """CREATING (the disk is being read), UPLOADING, READY; the operation is DONE when the snapshot is READY."""
        disk = snapshot.source_disk
        first = disk.snapshots_taken == 0

        def body_fn() -> None:
            if op.fault is not None:

                def failed() -> None:
                    snapshot.status = "FAILED"

                self._after(op.extra_seconds, failed)
                self._fail_with_fault(op)
                return
            if self._snapshot_refused(op, snapshot):
                return

            def uploading() -> None:
                snapshot.status = "UPLOADING"
                op.progress = 50

                def ready() -> None:
                    snapshot.status = "READY"
                    fill = 0.3 if first else 0.3 * self.profile.incremental_fraction
                    snapshot.storage_bytes = int(disk.size_gb * 2**30 * fill)
                    disk.snapshots_taken += 1
                    self._finish(op)

                self._after(self.profile.snapshot_upload_seconds(disk.size_gb, first), ready)

            self._after(self.profile.snapshot_creating_seconds + op.extra_seconds, uploading)

        self._run_serialized(op, body_fn)

    def disk_ref(self, project: str, ref: str) -> Disk:
        """The disk a URL or partial reference names (zonal or regional)."""
        parsed = parse_ref(ref)
        if parsed["collection"] != "disks" or not (parsed["zone"] or parsed["region"]):
            raise ApiError(400, "invalid", f"Invalid value for field 'resource.sourceDisk': '{ref}'")
        key = (parsed["project"] or project, str(parsed["region"] or parsed["zone"]), str(parsed["name"]))
        disk = self.disks.get(key)
        if disk is None:
            raise not_found(ref.removeprefix(API_PREFIX))
        return disk

    def instant_snapshot_ref(self, project: str, ref: str) -> InstantSnapshot:
        parsed = parse_ref(ref)
        scope = f"regions/{parsed['region']}" if parsed["region"] else f"zones/{parsed['zone']}"
        if parsed["collection"] != "instantSnapshots" or not (parsed["zone"] or parsed["region"]):
            raise ApiError(400, "invalid", f"Invalid value for field 'resource.sourceInstantSnapshot': '{ref}'")
        found = self.instant_snapshots.get((parsed["project"] or project, scope, str(parsed["name"])))
        if found is None:
            raise not_found(ref.removeprefix(API_PREFIX))
        return found

    def insert_disk(self, project: str, zone: str, body: dict[str, Any], faults: list[Fault]) -> dict[str, Any]:
        with self.cond:
            name = body.get("name")
            if not name:
                raise ApiError(400, "required", "Required field 'resource.name' not specified")
            if (project, zone, name) in self.disks:
                raise ApiError(
                    409, "alreadyExists", f"The resource 'projects/{project}/zones/{zone}/disks/{name}' already exists"
                )
            source = body.get("sourceSnapshot")
            snapshot = self._ready_snapshot(project, source) if source else None
            size = int(body.get("sizeGb") or (snapshot.source_disk.size_gb if snapshot else 10))
            if snapshot is not None and size < snapshot.source_disk.size_gb:
                raise ApiError(
                    400,
                    "invalid",
                    f"Requested disk size cannot be smaller than the snapshot size ({snapshot.source_disk.size_gb} GB)",
                )
            labels = {str(k): str(v) for k, v in (body.get("labels") or {}).items()}
            validate_labels(labels)
            disk = Disk(
                project,
                zone,
                name,
                size_gb=size,
                disk_type=str(body.get("type") or "pd-balanced").rsplit("/", 1)[-1],
                labels=labels,
                status="CREATING",
                source_snapshot=snapshot.self_link if snapshot else None,
                source_snapshot_id=snapshot.id if snapshot else None,
                guest_console=snapshot.guest_console if snapshot else "",
            )
            self.disks[(project, zone, name)] = disk
            self.zones.setdefault(project, set()).add(zone)
            op = self._new_operation(project, zone, "insert", disk.self_link, disk.id, disk.self_link, faults)

            def body_fn() -> None:
                if op.fault is not None:
                    self.disks.pop((project, zone, name), None)
                    self._fail_with_fault(op)
                    return

                def ready() -> None:
                    disk.status = "READY"

                def created() -> None:
                    if snapshot is None:
                        ready()
                    else:  # RESTORING after the insert is DONE (profile.py)
                        disk.status = "RESTORING"
                        self._after(self.profile.disk_restoring_seconds, ready)
                    self._finish(op)

                self._after(self.profile.disk_create_seconds(size) + op.extra_seconds, created)

            self._run_serialized(op, body_fn)
            return op.to_json()

    def _ready_snapshot(self, project: str, ref: str) -> Snapshot:
        parsed = parse_ref(ref)
        snapshot = self._snapshot(parsed["project"] or project, str(parsed["name"]))
        if snapshot.status != "READY":
            raise ApiError(400, "resourceNotReady", f"The resource '{snapshot.path}' is not ready")
        return snapshot

    # -------------------------------------------------------------------------------- snapshots API --
    def list_snapshots(self, project: str, filter_text: str | None) -> list[dict[str, Any]]:
        predicate = _compile(filter_text)
        with self.cond:
            items = [s.to_json() for (p, _), s in sorted(self.snapshots.items()) if p == project]
        return [item for item in items if predicate(item)]

    def get_snapshot(self, project: str, name: str) -> dict[str, Any]:
        with self.cond:
            return self._snapshot(project, name).to_json()

    def delete_snapshot(self, project: str, name: str, faults: list[Fault]) -> dict[str, Any]:
        with self.cond:
            snapshot = self._snapshot(project, name)
            if snapshot.status in ("CREATING", "UPLOADING"):
                raise ApiError(400, "resourceNotReady", f"The resource '{snapshot.path}' is not ready")
            op = self._new_operation(
                project, None, "delete", snapshot.self_link, snapshot.id, snapshot.self_link, faults
            )

            def body_fn() -> None:
                if self._fail_with_fault(op):
                    return
                snapshot.status = "DELETING"

                def gone() -> None:
                    if self.snapshots.get((project, name)) is snapshot:
                        del self.snapshots[(project, name)]
                    self._finish(op)

                self._after(self.profile.snapshot_delete_seconds + op.extra_seconds, gone)

            self._run_serialized(op, body_fn)
            return op.to_json()

    # ------------------------------------------------------------------------------------ invariants --
    def _instances_using(self, disk: Disk) -> list[Instance]:
        users = set(disk.users)
        return [i for i in self.instances.values() if i.self_link in users]

    def check_quiesced(self, disk: Disk, name: str, labels: dict[str, str]) -> None:
        """A consistency=stop point in time (snapshot or instant snapshot) needs every VM of the disk TERMINATED."""
        if labels.get(vm_labels.CONSISTENCY) != vm_labels.consistency_value("stop"):
            return
        for instance in self._instances_using(disk):
            if instance.status != "TERMINATED":
                self._violate(
                    "snapshot-of-running-disk",
                    f"snapshot {name} of disk {disk.name} while instance {instance.name} is "
                    f"{instance.status} (consistency=stop requires TERMINATED)",
                    snapshot=name,
                    disk=disk.name,
                    instance=instance.name,
                    instance_status=instance.status,
                )

    def _check_snapshot_invariants(self, disk: Disk, snapshot: Snapshot) -> None:
        if snapshot.source_instant_snapshot is None:  # from an instant snapshot, the point in time is fixed already
            self.check_quiesced(disk, snapshot.name, snapshot.labels)
        run = snapshot.labels.get(vm_labels.RUN)
        if run:
            for other in self.snapshots.values():
                if (
                    other.source_disk is disk
                    and other.labels.get(vm_labels.RUN) == run
                    and other.status not in ("FAILED", "DELETING")
                ):
                    self._violate(
                        "duplicate-snapshot",
                        f"snapshot {snapshot.name} duplicates {other.name}: same disk {disk.name} and "
                        f"{vm_labels.RUN}={run}",
                        snapshot=snapshot.name,
                        duplicate_of=other.name,
                        disk=disk.name,
                        run=run,
                    )

    def _check_start_during_snapshot(self, instance: Instance) -> None:
        """Starting a VM whose disk is still in a consistency=stop snapshot's CREATING phase breaks consistency."""
        links = {d["source"] for d in instance.disks}
        points: list[Snapshot | InstantSnapshot] = [
            *(s for s in self.snapshots.values() if s.source_instant_snapshot is None),
            *self.instant_snapshots.values(),
        ]
        for snapshot in points:
            if (
                snapshot.source_disk.self_link in links
                and snapshot.status == "CREATING"
                and snapshot.labels.get(vm_labels.CONSISTENCY) == vm_labels.consistency_value("stop")
            ):
                self._violate(
                    "start-during-snapshot-creating",
                    f"instance {instance.name} started while snapshot {snapshot.name} of its disk "
                    f"{snapshot.source_disk.name} is still CREATING",
                    snapshot=snapshot.name,
                    disk=snapshot.source_disk.name,
                    instance=instance.name,
                )

    def check_left_stopped(self) -> list[dict[str, Any]]:
        """Instances not in their baseline status while no operation on them is in flight (added to violations)."""
        with self.cond:
            found = []
            for instance in self.instances.values():
                busy = instance.self_link in self._busy or any(
                    op.status != "DONE" and op.target_link == instance.self_link for op in self.operations.values()
                )
                if busy or instance.status == instance.baseline_status:
                    continue
                found.append(
                    self._violate(
                        "left-in-wrong-state",
                        f"instance {instance.name} is {instance.status}, its baseline is {instance.baseline_status}",
                        instance=instance.name,
                        zone=instance.zone,
                        project=instance.project,
                        status=instance.status,
                        baseline_status=instance.baseline_status,
                    )
                )
            return found


def _compile(filter_text: str | None) -> Callable[[dict[str, Any]], bool]:
    try:
        return compile_filter(filter_text)
    except FilterError as exc:
        raise ApiError(400, "invalid", f"Invalid value for field 'filter': '{filter_text}'. {exc}") from exc


_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


def check_name(name: str) -> None:
    """Compute Engine's resource name rule (RFC 1035), answered as its 400."""
    if not _NAME.fullmatch(name):
        raise ApiError(
            400,
            "invalid",
            f"Invalid value for field 'resource.name': '{name}'. Must be a match of regex "
            "'[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?'",
        )


_LABEL_KEY = re.compile(r"[a-z][-_a-z0-9]{0,62}")
_LABEL_VALUE = re.compile(r"[-_a-z0-9]{0,63}")


def validate_labels(values: dict[str, str]) -> None:
    if len(values) > 64:
        raise ApiError(400, "invalid", "Too many labels: at most 64 are allowed")
    for key, value in values.items():
        if not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(value):
            raise ApiError(
                400,
                "invalid",
                f"Invalid value for field 'labels': '{key}={value}'. Label keys and values must match "
                "[a-z][-_a-z0-9]{0,62} and [-_a-z0-9]{0,63}",
            )
