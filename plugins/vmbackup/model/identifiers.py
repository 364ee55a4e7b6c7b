"""Names and label values derived from a DAG run: deterministic, so a retried task finds its own work.

A retry must never create a second snapshot: the snapshot name depends only on (policy, run, disk), so
a repeated createSnapshot answers "already exists" for our own snapshot, which counts as success.
"""

from __future__ import annotations

import hashlib
import re
import time

SNAPSHOT_NAME_PATTERN = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_DISK_PREFIX_MAX = 44  # + "-" + 12 hex digits <= 57 characters, inside Compute Engine's 63


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def run_hash(dag_id: str, run_id: str) -> str:
    """Short label value naming one DAG run (run ids carry ':' and '+', which labels refuse)."""
    return "r" + _digest(dag_id, run_id)[:11]


def snapshot_name(dag_id: str, run_id: str, project: str, zone: str, disk: str) -> str:
    """Unique per run and disk, the same on every retry; readable prefix from the disk name."""
    prefix = disk[:_DISK_PREFIX_MAX].rstrip("-")
    name = f"{prefix}-{_digest(dag_id, run_id, project, zone, disk)[:12]}"
    if not SNAPSHOT_NAME_PATTERN.fullmatch(name):  # disk names are validated GCE names; this guards the contract
        raise ValueError(f"cannot derive a valid snapshot name from disk {disk!r}")
    return name


def instant_snapshot_name(snapshot: str) -> str:
    """The instant snapshot cut for a run's snapshot of a disk: derived from that name, so it too is per run and disk.

    Instant snapshots are a collection of their own (zonal or regional), so the suffix is for people reading a list.
    """
    return f"{snapshot}-i"


def lock_value(run: str, ttl_seconds: int, now: float | None = None) -> str:
    """Label value of the instance lock: which run holds it and until when (epoch seconds)."""
    expires = int((time.time() if now is None else now) + ttl_seconds)
    return f"{run}-{expires}"


def parse_lock(value: str | None) -> tuple[str, int] | None:
    """(run, expiry) of a lock label, or None when absent or unreadable (an unreadable lock is ignored)."""
    if not value:
        return None
    run, _, expires = value.rpartition("-")
    if not run or not expires.isdigit():
        return None
    return run, int(expires)
