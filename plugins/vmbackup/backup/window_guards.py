"""The down window's per-process guards: one window at a time per VM, run and phase, and a cap on the VMs of one
project whose Compute Engine work runs at once, across every window of this process (down_window.run_window)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from vmbackup.backup.resolution import Target

ResultT = TypeVar("ResultT")


@dataclass
class Seat(Generic[ResultT]):
    """A VM's place in this process for one run and phase: one window holds it at a time."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0  # windows holding or waiting for it
    earlier: ResultT | None = None  # the result of the window that held it before, while another one waited


_guards_lock = threading.Lock()
_seats: dict[tuple[str, str, str, str, str], Seat[Any]] = {}
_project_caps: dict[tuple[str, int], threading.BoundedSemaphore] = {}


@contextmanager
def one_window_per_vm(t: Target, phase: str) -> Iterator[Seat[Any]]:
    """One window at a time per VM, run and phase in this process: a re-created trigger or a retried task waits for
    the window still going (threads cannot be cancelled), and finds its result in the seat (`earlier`), so it
    reports what that window did, Compute Engine's reasons included, instead of re-deriving it. The entry goes
    once nobody waits on it, so a long-lived triggerer keeps none per finished run."""
    key = _seat_key(t, phase)
    with _guards_lock:
        seat = _seats.setdefault(key, Seat())
        seat.users += 1
    try:
        with seat.lock:
            yield seat
    finally:
        with _guards_lock:
            seat.users -= 1
            if seat.users == 0:
                del _seats[key]


def windows_at(t: Target, phase: str) -> int:
    """How many windows of this process hold or wait for the VM's seat in `phase`: where a second window of the
    same run is while the first still goes (what a test of that waits for)."""
    with _guards_lock:
        seat = _seats.get(_seat_key(t, phase))
        return seat.users if seat is not None else 0


def _seat_key(t: Target, phase: str) -> tuple[str, str, str, str, str]:
    return (t["run"], phase, t["project"], t["zone"], t["instance"])


def project_cap(project: str, limit: int) -> threading.BoundedSemaphore:
    """VMs of one project whose Compute Engine work runs at once in this process, across every window."""
    with _guards_lock:
        return _project_caps.setdefault((project, limit), threading.BoundedSemaphore(limit))
