"""The simulated Compute Engine: all resources, faults, calls and violations, behind one lock.

``World`` holds the state; the rules live beside the resource they govern: ``instances``, ``disks``,
``snapshots``, ``instant_snapshots``, ``reservations``, ``power`` (instance power states, stockouts), ``devices``
(attachment, serial console), ``operations`` (the operation state machine), ``scheduler`` (the clock), ``quotas``
(rate and concurrent operation quotas), ``snapshot_rules``. Public methods take the lock themselves;
``_``-methods expect it held. Invariants of the project driving the simulator are checked by ``observers``.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from typing import Any

from . import quotas
from .errors import ApiError, not_found
from .faults import Fault
from .observers import DEFAULT_OBSERVERS, Observer
from .operations import OperationLedger
from .profile import Profile
from .resources import Disk, Instance, InstantSnapshot, Reservation, Snapshot

# Statuses in which an instance is, or may soon be, writing to its disks.
INSTANCE_ACTIVE = {"PROVISIONING", "STAGING", "RUNNING", "STOPPING", "SUSPENDING", "REPAIRING"}

__all__ = ["ApiError", "World", "not_found"]


class World(OperationLedger):
    """All simulated state. Public methods take the lock themselves; ``_``-methods expect it held."""

    def __init__(self, profile: Profile | None = None, observers: list[Observer] | None = None) -> None:
        super().__init__(profile)
        self.observers: list[Observer] = (
            [factory() for factory in DEFAULT_OBSERVERS] if observers is None else list(observers)
        )
        self._clear()

    def _clear(self) -> None:
        self.instances: dict[tuple[str, str, str], Instance] = {}
        self.disks: dict[tuple[str, str, str], Disk] = {}
        self.snapshots: dict[tuple[str, str], Snapshot] = {}
        # (project, "zones/Z" or "regions/R", name)
        self.instant_snapshots: dict[tuple[str, str, str], InstantSnapshot] = {}
        self.reservations: dict[tuple[str, str, str], Reservation] = {}  # (project, zone, name)
        self._clear_operations()
        self.zones: dict[str, set[str]] = {}
        self.faults: list[Fault] = []
        self.denied_permissions: set[tuple[str, str]] = set()  # (project, permission) the caller lacks (iam.py)
        self.calls: list[dict[str, Any]] = []
        self.violations: list[dict[str, Any]] = []
        self.rate_quotas = quotas.RateQuotas()
        # zone, or "zone/machine type" -> time.monotonic() the stockout ends (power.py)
        self.stockouts: dict[str, float] = {}
        # zone -> machine types it does not offer (machine_types.py)
        self.withdrawn_machine_types: dict[str, set[str]] = {}
        # zone -> accelerator (GPU) types it does not offer (accelerators.py)
        self.withdrawn_accelerator_types: dict[str, set[str]] = {}
        self._events.clear()
        self._fault_ids = itertools.count(1)

    def reset(self, profile: Profile | None = None) -> None:
        with self.cond:
            self._new_epoch()
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

    def call_counts(self) -> dict[str, int]:
        with self.cond:
            return dict(Counter(call["method"] for call in self.calls))

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

    def instances_using(self, disk: Disk) -> list[Instance]:
        users = set(disk.users)
        return [i for i in self.instances.values() if i.self_link in users]

    # -------------------------------------------------------------------------- faults and recording --
    def inject(self, fault: Fault) -> Fault:
        with self.cond:
            fault.id = fault.id or f"fault-{next(self._fault_ids)}"
            self.faults.append(fault)
            return fault

    def clear_faults(self) -> None:
        with self.cond:
            self.faults.clear()

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

    # ------------------------------------------------------------------------------------ invariants --
    def violate(self, kind: str, message: str, **details: Any) -> dict[str, Any]:
        """Record a broken invariant (lock held): ``ComputeSimulator.violations`` lists them."""
        violation = {"kind": kind, "message": message, "time": time.time(), **details}
        self.violations.append(violation)
        return violation

    def observe_snapshot(self, snapshot: Snapshot) -> None:
        for observer in self.observers:
            observer.snapshot_requested(self, snapshot)

    def observe_instant_snapshot(self, instant: InstantSnapshot) -> None:
        for observer in self.observers:
            observer.instant_snapshot_requested(self, instant)

    def observe_start(self, instance: Instance) -> None:
        for observer in self.observers:
            observer.instance_starting(self, instance)

    def check_left_stopped(self) -> list[dict[str, Any]]:
        """Instances not in their baseline status while no operation on them is in flight (added to violations)."""
        with self.cond:
            found = []
            for instance in self.instances.values():
                busy = self.is_busy(instance.self_link) or any(
                    op.status != "DONE" and op.target_link == instance.self_link for op in self.operations.values()
                )
                if busy or instance.status == instance.baseline_status:
                    continue
                found.append(
                    self.violate(
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
