"""Waiting for VMs another run holds, before anything of ours goes down: look, then wait on or give up.

A VM another run holds (another policy's backup, a restore) is waited for up to spec.timeouts.lockWaitSeconds,
then skipped with its holder named. A wait never carries a stop past the slot's starting deadline or out of the
maintenance window (slot_check.too_late). Pure: the caller looks at the VMs and hosts the wait (a reschedule,
so no worker slot is held between looks); the per-VM stop step and the batch down window decide alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from vmbackup.backup.slot_check import too_late
from vmbackup.model.identifiers import Lock
from vmbackup.model.policy import BackupPolicy
from vmbackup.model.report import MissedSlot
from vmbackup.vm.lock import held_message

K = TypeVar("K")

LOCK_WAIT_FIELD = "spec.timeouts.lockWaitSeconds"


@dataclass(frozen=True)
class LockVerdict(Generic[K]):
    """What to do after one look: wait on (look again later), or go on without the VMs in `skips`."""

    wait: bool
    skips: dict[K, str] = field(default_factory=dict)  # VM -> why it is skipped (not touched by this run)


def lock_verdict(
    policy: BackupPolicy,
    locks: Mapping[K, Lock | None],
    waited_seconds: float,
    has_waited: bool,
    slot: datetime | None,
    now: datetime,
) -> LockVerdict[K]:
    """Decide from each VM's foreign lock (None: free) and how long this step has waited so far.

    `has_waited` is true once the step was rescheduled at least once: then a free VM is late too when the slot
    may stop no VM any more, since the wait delayed it.
    """
    held = {key: lock for key, lock in locks.items() if lock is not None}
    late = too_late(policy, slot, now) if slot is not None and (held or has_waited) else None
    if late is not None:
        return LockVerdict(
            wait=False,
            skips={
                key: (
                    f"{held_message(lock)}; waited {waited_seconds:.0f} s, "
                    if lock is not None
                    else f"waited {waited_seconds:.0f} s for another run's lock, "
                )
                + too_late_now(late)
                for key, lock in locks.items()
                if lock is not None or has_waited  # a VM that never waited goes on: the run's start was on time
            },
        )
    limit = policy.spec.timeouts.lock_wait_seconds
    if held and waited_seconds < limit:
        return LockVerdict(wait=True)
    return LockVerdict(
        wait=False,
        skips={
            key: f"held by {lock.holder()}; waited {waited_seconds:.0f} s ({LOCK_WAIT_FIELD}: {limit} s); skipped "
            "so it is not stopped twice"
            for key, lock in held.items()
        },
    )


def too_late_now(late: MissedSlot) -> str:
    """Why a wait ended before its bound: the slot may stop no VM any more."""
    fields = {"Late": "spec.startingDeadlineSeconds", "OutsideWindow": "spec.maintenanceWindow"}
    return f"and now this slot may stop no VM ({late.reason}, {fields.get(late.reason, '')}); skipped"


def raced_message(lock: Lock) -> str:
    """A VM another run locked between our last look and our lock: skipped rather than waited for in the window."""
    return f"{held_message(lock)}; it was locked by that run just before this run's stop; skipped so it is not stopped twice"
