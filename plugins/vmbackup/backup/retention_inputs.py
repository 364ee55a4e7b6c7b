"""What retention reads of a policy's snapshots, the same for the prune step and ``vmbackupctl retention``.

From Compute Engine's snapshot resources to model.retention's SnapshotInfo: the disk (per-disk rules), the VM and
the run (keepLastSuccessful), and the disks the run meant to snapshot of the VM (its backup record, narrowed to the
policy's spec.instances[].disks). No Airflow, no I/O: the callers list the snapshots.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from vmbackup.model import labels as vmlabels
from vmbackup.model.backup_record import read_record
from vmbackup.model.policy import BackupPolicy
from vmbackup.model.retention import SnapshotInfo, Verdict, parse_timestamp, retention_verdicts


def owner_labels(policy: BackupPolicy) -> dict[str, str]:
    """The labels every snapshot this policy made carries: retention looks at no other snapshot."""
    return {
        vmlabels.MANAGED_BY: vmlabels.MANAGED_BY_VALUE,
        vmlabels.POLICY_NAMESPACE: policy.namespace,
        vmlabels.POLICY_NAME: policy.name,
    }


def policy_verdicts(snapshots: Iterable[Any], policy: BackupPolicy, now: datetime) -> list[Verdict]:
    """Each of the policy's snapshots (compute_v1.Snapshot) kept or deleted at `now`, and the rule that decided:
    what the prune step deletes and what the preview prints."""
    retention = policy.spec.retention
    return retention_verdicts(retention_inputs(snapshots, policy, now), retention, now, policy.spec.timezone)


def retention_inputs(snapshots: Iterable[Any], policy: BackupPolicy, listed_at: datetime) -> list[SnapshotInfo]:
    """The policy's own snapshots (compute_v1.Snapshot) as retention sees them; one without a creation time counts
    as made when it was listed (the newest, so kept)."""
    ours = owner_labels(policy)
    wanted = {(i.name, i.zone): set(i.disks) for i in policy.spec.instances or [] if i.disks}
    infos = []
    for snap in snapshots:
        if any(snap.labels.get(k) != v for k, v in ours.items()):
            continue
        instance = snap.labels.get(vmlabels.INSTANCE, "")
        record = read_record(snap.description)
        expected = {d["disk"] for d in record["disks"]} if record else set()
        narrowed = wanted.get((instance, _zone(snap.source_disk or "")))
        infos.append(
            SnapshotInfo(
                name=snap.name,
                disk=disk_key(snap),
                status=snap.status,
                created=parse_timestamp(snap.creation_timestamp) if snap.creation_timestamp else listed_at,
                instance=instance,
                run=snap.labels.get(vmlabels.RUN, ""),
                expected_disks=frozenset(expected & narrowed if narrowed else expected),
            )
        )
    return infos


def disk_key(snapshot: Any) -> str:
    """The source disk of a snapshot, as zones/Z/disks/D or regions/R/disks/D (source URLs vary in prefix)."""
    source = snapshot.source_disk or ""
    for scope in ("zones", "regions"):
        if f"/{scope}/" in source:
            return f"{scope}/" + source.split(f"/{scope}/", 1)[1]
    return source or f"instance:{snapshot.labels.get(vmlabels.INSTANCE, '?')}"


def _zone(source: str) -> str:
    parts = source.rstrip("/").split("/")
    return parts[parts.index("zones") + 1] if "zones" in parts else ""
