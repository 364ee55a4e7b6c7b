"""Retention pruning: deletes this policy's snapshots that retention no longer keeps (selection in model.retention)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from vmbackup.backup.resolution import pulled_resolution
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.compute.step_operator import ComputeStepOperator
from vmbackup.model import labels as vmlabels
from vmbackup.model.policy import BackupPolicy
from vmbackup.model.retention import SnapshotInfo, parse_timestamp, snapshots_to_delete

log = logging.getLogger(__name__)


class PruneSnapshotsOperator(ComputeStepOperator):
    """Deletes this policy's snapshots that retention no longer keeps (per disk; newest READY always kept)."""

    def __init__(self, *, policy_json: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.policy_json = policy_json

    def run_step(self, context: Any, hook: ComputeEngineHook) -> list[str]:
        resolution = pulled_resolution(context)
        if resolution and resolution.get("missed"):
            return []  # a missed slot touches nothing, snapshots included
        policy = BackupPolicy.from_json(self.policy_json)
        project = policy.spec.project
        ours = hook.list_snapshots(
            project,
            {
                vmlabels.MANAGED_BY: vmlabels.MANAGED_BY_VALUE,
                vmlabels.POLICY_NAMESPACE: policy.namespace,
                vmlabels.POLICY_NAME: policy.name,
            },
        )
        infos = [
            SnapshotInfo(
                name=s.name,
                disk=_disk_key(s),
                status=s.status,
                created=parse_timestamp(s.creation_timestamp) if s.creation_timestamp else datetime.now(UTC),
            )
            for s in ours
        ]
        doomed = snapshots_to_delete(infos, policy.spec.retention, datetime.now(UTC))
        pruned: list[str] = []
        for snap in doomed:
            log.info(
                "Deleting snapshot %s (disk %s, created %s): outside retention", snap.name, snap.disk, snap.created
            )
            ref = hook.delete_snapshot(project, snap.name)
            if ref is not None:
                hook.wait_done(ref, 600)
            pruned.append(snap.name)
        return pruned


def _disk_key(snapshot: Any) -> str:
    """The source disk of a snapshot, as zones/Z/disks/D (source URLs vary in prefix)."""
    source = snapshot.source_disk or ""
    if "/zones/" in source:
        return "zones/" + source.split("/zones/", 1)[1]
    return source or f"instance:{snapshot.labels.get(vmlabels.INSTANCE, '?')}"
