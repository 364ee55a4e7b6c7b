"""Observers: how a project that drives the simulator checks its own invariants without the simulator knowing them.

The simulator knows Compute Engine; what a backup product must never do (snapshot a disk it meant to quiesce while
its VM runs, take a run's snapshot twice ...) is the product's. An observer is told of the moments such rules are
about, and records what it finds with ``world.violate(kind, message, **details)`` (``ComputeSimulator.violations``).
Each ``World`` builds its observers from ``DEFAULT_OBSERVERS`` (factories) unless given a list; the embedding
project appends its own factory there (this repository: ``devstack/backup_invariants.py``, installed by
``devstack/__init__.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .resources import Disk, Instance, InstantSnapshot, Snapshot


class WorldView(Protocol):
    """What an observer may read and record (the lock is held when it is called)."""

    snapshots: dict[tuple[str, str], Snapshot]
    instant_snapshots: dict[tuple[str, str, str], InstantSnapshot]

    def instances_using(self, disk: Disk) -> list[Instance]: ...

    def violate(self, kind: str, message: str, **details: Any) -> dict[str, Any]: ...


class Observer(Protocol):
    def snapshot_requested(self, world: WorldView, snapshot: Snapshot) -> None:
        """A standard snapshot was accepted (disks.createSnapshot, snapshots.insert); not yet in ``snapshots``."""

    def instant_snapshot_requested(self, world: WorldView, instant: InstantSnapshot) -> None:
        """An instant snapshot was accepted; not yet in ``instant_snapshots``."""

    def instance_starting(self, world: WorldView, instance: Instance) -> None:
        """A start or resume is about to power the instance on (STAGING)."""


DEFAULT_OBSERVERS: list[Callable[[], Observer]] = []


def register_default(factory: Callable[[], Observer]) -> None:
    """Every World created from now on gets an observer from ``factory`` (idempotent)."""
    if factory not in DEFAULT_OBSERVERS:
        DEFAULT_OBSERVERS.append(factory)
