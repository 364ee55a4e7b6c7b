"""``ComputeSimulator``: the simulator in this process (its world, its HTTP server, its control plane).

The control plane, ``/_sim/...`` on the API's port, is ``control``; ``SimulatorControl`` (control.py) calls it over
HTTP with this class's method names.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from . import (
    accelerators,
    devices,
    disks,
    iam,
    instances,
    instant_snapshots,
    power,
    presets,
    quotas,
    reservations,
    snapshots,
)
from .errors import ApiError
from .faults import Fault
from .observers import Observer
from .profile import Profile
from .server import _Server
from .state import World

_NO_ROUTE = object()


class ComputeSimulator:
    """A running Compute Engine API simulator. Use as a context manager or call ``start()`` / ``stop()``."""

    def __init__(
        self,
        profile: Profile | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        observers: list[Observer] | None = None,
    ) -> None:
        """``observers``: the invariant checkers (observers.py); None: ``observers.DEFAULT_OBSERVERS``."""
        self.world = World(profile or Profile.fast(), observers)
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> ComputeSimulator:
        if self._server is not None:
            return self
        self._server = _Server((self._host, self._port), self)
        self._port = int(self._server.server_address[1])
        self.world.start()
        self._thread = threading.Thread(target=self._server.serve_forever, name="gce-sim-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.world.stop()  # wakes parked long-polls
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ComputeSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self._host in ("", "0.0.0.0") else self._host
        return f"http://{host}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    # profile ---------------------------------------------------------------------------------------------
    @property
    def profile(self) -> Profile:
        return self.world.profile

    def set_profile(self, profile: Profile) -> None:
        self.world.set_profile(profile)

    # seeding ---------------------------------------------------------------------------------------------
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
        graceful_shutdown_seconds: float | None = None,
        local_ssds: int = 0,
        guest_flush_supported: bool = True,
        provisioning_model: str = "STANDARD",
        reservation_affinity: dict[str, Any] | None = None,
        guest_accelerators: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """Seed an instance (``instances.add_instance``; ``guest_accelerators``: its GPUs, ``{"nvidia-tesla-t4": 1}``,
        accelerators.py); the stricter features are power.py's ``configure``:
        ``graceful_shutdown_seconds`` (0 = the 10-minute default), Local SSDs, guest flush support, Spot;
        ``reservation_affinity`` (reservations.py), e.g. ``{"consumeReservationType": "SPECIFIC_RESERVATION", "key":
        "compute.googleapis.com/reservation-name", "values": ["r1"]}``."""
        with self.world.cond:
            instance = instances.add_instance(
                self.world,
                project,
                zone,
                name,
                labels=labels,
                disks=disks,
                status=status,
                machine_type=machine_type,
                tags=tags,
                network=network,
                reservation_affinity=reservation_affinity,
            )
            accelerators.attach(instance, dict(guest_accelerators or {}))
            power.configure(
                instance,
                graceful_shutdown_seconds=graceful_shutdown_seconds,
                local_ssds=local_ssds,
                guest_flush_supported=guest_flush_supported,
                provisioning_model=provisioning_model,
            )
            return instance.to_json()

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
        return disks.add_disk(self.world, project, zone, name, size_gb=size_gb, disk_type=disk_type, labels=labels)

    def add_snapshot(
        self,
        project: str,
        zone: str,
        disk: str,
        name: str,
        *,
        created: float,
        labels: dict[str, str] | None = None,
        description: str = "",
        status: str = "READY",
        snapshot_project: str | None = None,
    ) -> dict[str, Any]:
        """Seed a snapshot of a disk as if taken at `created` (epoch seconds; snapshots.add_snapshot), in
        `snapshot_project` (a backup project) or the disk's."""
        return snapshots.add_snapshot(
            self.world,
            project,
            zone,
            disk,
            name,
            created=created,
            labels=labels,
            description=description,
            status=status,
            snapshot_project=snapshot_project,
        )

    def add_reservation(
        self,
        project: str,
        zone: str,
        name: str,
        *,
        count: int = 1,
        machine_type: str = "e2-medium",
        specific_reservation_required: bool = False,
    ) -> dict[str, Any]:
        """Seed a READY reservation of ``count`` VMs of ``machine_type`` in ``zone`` (reservations.py)."""
        return reservations.add_reservation(
            self.world,
            project,
            zone,
            name,
            count=count,
            machine_type=machine_type,
            specific_reservation_required=specific_reservation_required,
        )

    def seed_classic(self, project: str = "demo-project") -> None:
        instances.seed_classic(self.world, project)

    def set_guest_console(self, project: str, zone: str, disk: str, text: str) -> dict[str, Any]:
        return devices.set_guest_console(self.world, project, zone, disk, text)

    def append_serial(self, project: str, zone: str, instance: str, text: str, port: int = 1) -> dict[str, Any]:
        return devices.append_serial(self.world, project, zone, instance, text, port)

    def wait_for_serial(self, project: str, zone: str, instance: str, text: str, timeout: float = 10.0) -> bool:
        return devices.wait_for_serial(self.world, project, zone, instance, text, timeout)

    def reset(self, profile: Profile | None = None) -> None:
        """Empty, with the clock running (a hold ends here too)."""
        self.world.reset(profile)

    @contextlib.contextmanager
    def clock_held(self) -> Iterator[Callable[[], bool]]:
        """Within: no timed transition happens until the yielded ``step`` fires the next one, and the rate quota
        window stands still until ``advance_clock`` moves it (scheduler.py)."""
        self.world.hold()
        try:
            yield self.world.step
        finally:
            self.world.release()

    def advance_clock(self, seconds: float) -> float:
        """Within ``clock_held``: move the wall clock that rate quota windows read on by ``seconds`` (0: read it);
        returns it, in epoch seconds (scheduler.py, quotas.py). Outside a hold: RuntimeError."""
        return self.world.advance(seconds)

    # inspection ------------------------------------------------------------------------------------------
    def instance(self, project: str, zone: str, name: str) -> dict[str, Any]:
        return self.world.instance(project, zone, name)

    def disk(self, project: str, zone: str, name: str) -> dict[str, Any]:
        return self.world.disk(project, zone, name)

    def snapshots(self, project: str) -> list[dict[str, Any]]:
        return self.world.snapshot_list(project)

    def instant_snapshots(self, project: str) -> list[dict[str, Any]]:
        """Every instant snapshot of the project, zonal and regional."""
        return instant_snapshots.instant_snapshot_list(self.world, project)

    def reservations(self, project: str) -> list[dict[str, Any]]:
        """Every reservation of the project, all zones."""
        return reservations.reservation_list(self.world, project)

    def operations(self) -> list[dict[str, Any]]:
        return self.world.operation_list()

    @property
    def calls(self) -> list[dict[str, Any]]:
        with self.world.cond:
            return [dict(call) for call in self.world.calls]

    def clear_calls(self) -> None:
        with self.world.cond:
            self.world.calls.clear()

    def call_counts(self) -> dict[str, int]:
        return self.world.call_counts()

    @property
    def violations(self) -> list[dict[str, Any]]:
        with self.world.cond:
            return [dict(v) for v in self.world.violations]

    def check_left_stopped(self) -> list[dict[str, Any]]:
        return self.world.check_left_stopped()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        return self.world.wait_idle(timeout)

    def blocked_waits(self) -> int:
        """How many ``operations.wait`` calls are parked in their long-poll right now: a test that holds the clock
        can know its waiters really wait before it lets their operations finish, instead of timing them."""
        with self.world.cond:
            return self.world.blocked_waits

    # faults ----------------------------------------------------------------------------------------------
    @property
    def faults(self) -> list[Fault]:
        with self.world.cond:
            return list(self.world.faults)

    def inject(self, fault: Fault) -> Fault:
        return self.world.inject(fault)

    def clear_faults(self) -> None:
        self.world.clear_faults()

    # stricter behaviours ---------------------------------------------------------------------------------
    def quota_usage(self) -> dict[str, dict[str, int]]:
        """project -> rate quota group -> the highest number of calls admitted in one window (quotas.py)."""
        return self.world.rate_quotas.usage()

    def set_rate_quota(self, group: str, per_minute: int) -> None:
        if group not in quotas.RATE_GROUPS:
            raise ValueError(f"unknown rate quota group {group!r} ({' | '.join(quotas.RATE_GROUPS)})")
        with self.world.cond:
            self.world.rate_quotas.overrides[group] = per_minute

    def stockout(self, zone: str, seconds: float, machine_type: str | None = None) -> float:
        """No capacity in ``zone`` (for ``machine_type`` only, if given) for ``seconds`` of Compute Engine time;
        returns the scaled length (power.py). A VM consuming a reservation with room still starts."""
        return power.set_stockout(self.world, zone, seconds, machine_type)

    def preempt(self, project: str, zone: str, name: str) -> dict[str, Any]:
        """Reclaim a RUNNING Spot VM; returns its ``compute.instances.preempted`` operation (power.py)."""
        return power.preempt(self.world, project, zone, name)

    def apply_preset(self, name: str, **params: Any) -> None:
        presets.apply(self.world, name, **params)

    def deny_permission(self, project: str, permission: str) -> None:
        """The caller lacks `permission` in `project` until reset: calls that need it answer 403 (iam.py)."""
        iam.deny(self.world, project, permission)

    # control plane ---------------------------------------------------------------------------------------
    def control(self, verb: str, parts: list[str], body: dict[str, Any]) -> tuple[int, Any]:
        """Answer ``verb /_sim/<parts>``: (HTTP status, JSON payload)."""
        try:
            for section in (self._control_setup, self._control_inspect, self._control_behaviour):
                result = section(verb, parts, body)
                if result is not _NO_ROUTE:
                    return 200, result
        except ApiError as exc:
            return exc.code, exc.body()
        except (TypeError, ValueError, KeyError) as exc:
            return 400, {"error": {"code": 400, "message": f"{type(exc).__name__}: {exc}"}}
        return 404, {"error": {"code": 404, "message": f"no control route {verb} /_sim/{'/'.join(parts)}"}}

    def _control_setup(self, verb: str, parts: list[str], body: dict[str, Any]) -> Any:
        match parts, verb:
            case ["health"], "GET":
                return {"ok": True, "base_url": self.base_url}
            case ["reset"], "POST":
                self.reset(profile=Profile.from_dict(body["profile"]) if body.get("profile") else None)
                return {"ok": True}
            case ["profile"], "GET":
                return self.profile.to_dict()
            case ["profile"], "PUT" | "POST":
                self.set_profile(Profile.from_dict(body))
                return self.profile.to_dict()
            case ["seed", "classic"], "POST":
                self.seed_classic(body.get("project", "demo-project"))
                return {"ok": True}
            case ["instances"], "POST":
                return self.add_instance(**body)
            case ["disks"], "POST":
                return self.add_disk(**body)
            case ["reservations"], "POST":
                return self.add_reservation(**body)
            case ["guest_console", project, zone, disk], "PUT" | "POST":
                return self.set_guest_console(project, zone, disk, str(body["text"]))
            case ["serial", project, zone, name], "POST":
                return self.append_serial(project, zone, name, str(body["text"]), int(body.get("port", 1)))
        return _NO_ROUTE

    def _control_inspect(self, verb: str, parts: list[str], body: dict[str, Any]) -> Any:
        match parts, verb:
            case ["instances", project, zone, name], "GET":
                return self.instance(project, zone, name)
            case ["disks", project, zone, name], "GET":
                return self.disk(project, zone, name)
            case ["snapshots", project], "GET":
                return self.snapshots(project)
            case ["instant_snapshots", project], "GET":
                return self.instant_snapshots(project)
            case ["reservations", project], "GET":
                return self.reservations(project)
            case ["operations"], "GET":
                return self.operations()
            case ["calls"], "GET":
                return self.calls
            case ["calls"], "DELETE":
                self.clear_calls()
                return {"ok": True}
            case ["call_counts"], "GET":
                return self.call_counts()
            case ["violations"], "GET":
                return self.violations
            case ["check_left_stopped"], "POST":
                return self.check_left_stopped()
            case ["wait_idle"], "POST":
                return {"idle": self.wait_idle(float(body.get("timeout", 10.0)))}
        return _NO_ROUTE

    def _control_behaviour(self, verb: str, parts: list[str], body: dict[str, Any]) -> Any:
        match parts, verb:
            case ["faults"], "GET":
                return [f.to_dict() for f in self.faults]
            case ["faults"], "POST":
                return self.inject(Fault.from_dict(body)).to_dict()
            case ["faults"], "DELETE":
                self.clear_faults()
                return {"ok": True}
            case ["quota_usage"], "GET":
                return self.quota_usage()
            case ["rate_quotas"], "PUT" | "POST":
                self.set_rate_quota(str(body["group"]), int(body["per_minute"]))
                return {"ok": True}
            case ["stockouts"], "POST":
                seconds = self.stockout(str(body["zone"]), float(body["seconds"]), body.get("machine_type"))
                return {"seconds": seconds}
            case ["preempt", project, zone, name], "POST":
                return self.preempt(project, zone, name)
            case ["presets"], "GET":
                return sorted(presets.PRESETS)
            case ["presets", name], "POST":
                self.apply_preset(name, **body)
                return {"ok": True}
            case ["denied_permissions"], "POST":
                self.deny_permission(str(body["project"]), str(body["permission"]))
                return {"ok": True}
        return _NO_ROUTE
