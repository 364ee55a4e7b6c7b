"""Names and label values derived from a DAG run: deterministic, so a retried task finds its own work.

A retry must never create a second snapshot: the snapshot name depends only on (policy, run, disk), so
a repeated createSnapshot answers "already exists" for our own snapshot, which counts as success.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypedDict

from vmbackup.model import labels as vmlabels

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


_LABEL_VALUE_MAX = 63  # Compute Engine label values: [a-z0-9_-]{0,63} ("Label requirements")


def run_id_label(run_id: str) -> str:
    """An Airflow run id as a label value people can read (lowercase; ':', '+', '.' and the like become '-')."""
    return re.sub(r"[^a-z0-9_-]", "-", run_id.lower())[:_LABEL_VALUE_MAX]


class LockHolder(TypedDict):
    """Who holds an instance lock: a policy's backup run or a restore's, by namespace/name and Airflow run id."""

    kind: Literal["policy", "restore"]
    namespace: str  # a DNS label: a valid label value as it is
    name: str  # a DNS label too
    run_id: str  # the Airflow run id (its label form goes on the instance)


def lock_holder(kind: Literal["policy", "restore"], namespace: str, name: str, run_id: str) -> LockHolder:
    return LockHolder(kind=kind, namespace=namespace, name=name, run_id=run_id)


@dataclass(frozen=True)
class Lock:
    """An instance lock as read from the instance's labels (holder None: an older lock that does not name it)."""

    run: str  # the run hash: what tells one run's lock from another's
    expires: int  # epoch seconds
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    run_id: str | None = None  # label form of the holder's Airflow run id

    def holder(self) -> str:
        """Who holds it, for messages: 'policy ns/name run <run id>'."""
        if self.kind and self.namespace and self.name:
            return f"{self.kind} {self.namespace}/{self.name} run {self.run_id or self.run}"
        return f"another run ({self.run}; its lock is older and does not name its policy)"

    def until(self) -> str:
        return datetime.fromtimestamp(self.expires, UTC).isoformat()


def lock_labels(run: str, ttl_seconds: int, holder: LockHolder | None, now: float | None = None) -> dict[str, str]:
    """The labels an instance carries while `run` holds it: the lock itself and who holds it."""
    found = {vmlabels.LOCK: lock_value(run, ttl_seconds, now)}
    if holder is not None:
        key = vmlabels.LOCK_POLICY if holder["kind"] == "policy" else vmlabels.LOCK_RESTORE
        found |= {
            vmlabels.LOCK_NAMESPACE: holder["namespace"],
            key: holder["name"],
            vmlabels.LOCK_RUN_ID: run_id_label(holder["run_id"]),
        }
    return found


def read_lock(labels: Mapping[str, str] | None) -> Lock | None:
    """The lock an instance's labels carry, or None (absent or unreadable: an unreadable lock is ignored)."""
    parsed = parse_lock((labels or {}).get(vmlabels.LOCK))
    if parsed is None:
        return None
    assert labels is not None
    kind, name = next(
        (
            (k, labels[key])
            for k, key in (("policy", vmlabels.LOCK_POLICY), ("restore", vmlabels.LOCK_RESTORE))
            if key in labels
        ),
        (None, None),
    )
    return Lock(
        run=parsed[0],
        expires=parsed[1],
        kind=kind,
        namespace=labels.get(vmlabels.LOCK_NAMESPACE),
        name=name,
        run_id=labels.get(vmlabels.LOCK_RUN_ID),
    )


def without_lock(labels: Mapping[str, str]) -> dict[str, str]:
    """The labels with every lock label removed (ours, or an expired lock's left-over holder labels)."""
    return {k: v for k, v in labels.items() if k not in vmlabels.LOCK_LABELS}


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
