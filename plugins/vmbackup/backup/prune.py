"""Retention pruning: deletes this policy's snapshots that retention no longer keeps (selection in model.retention).

Snapshots are listed and deleted in the policy's snapshot project (spec.snapshot.project when set), and only those
carrying the policy's labels: a backup project shared by several policies or namespaces loses nothing of theirs.

With spec.snapshot.method instant it also sweeps the instant snapshots this policy made and a failed or interrupted
run left behind (only those carrying the policy's labels; never while a conversion still reads one).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from vmbackup.backup.resolution import Resolution, all_targets, disk_scope, pulled_resolution
from vmbackup.backup.retention_inputs import owner_labels, policy_verdicts
from vmbackup.backup.snapshot_cuts import CONVERTING, delete_instant_snapshot, made_by
from vmbackup.compute.hook import ComputeEngineHook, resource_name
from vmbackup.compute.step_operator import ComputeStepOperator
from vmbackup.model import labels as vmlabels
from vmbackup.model.policy import BackupPolicy
from vmbackup.model.retention import Verdict
from vmbackup.policy_task import PolicyTask

log = logging.getLogger(__name__)


class PruneSnapshotsOperator(PolicyTask, ComputeStepOperator):
    """Deletes this policy's snapshots that retention no longer keeps (model.retention decides; vmbackupctl retention
    previews the same verdicts)."""

    def __init__(self, *, policy_json: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.policy_json = policy_json

    def run_step(self, context: Any, hook: ComputeEngineHook) -> list[str]:
        resolution = pulled_resolution(context)
        if resolution and resolution.get("missed"):
            return []  # a missed slot touches nothing, snapshots included
        policy = self.policy
        project = policy.spec.snapshot_project  # a backup project (spec.snapshot.project), else the workload project
        ours = hook.list_snapshots(project, owner_labels(policy))
        doomed = sorted((v for v in policy_verdicts(ours, policy, datetime.now(UTC)) if not v.keep), key=_name)
        if policy.spec.snapshot.method == "instant":
            converting = {
                resource_name(s.source_instant_snapshot)
                for s in ours
                if s.source_instant_snapshot and s.status in CONVERTING
            }
            sweep_instant_snapshots(hook, policy, resolution, converting)
        pruned: list[str] = []
        for verdict in doomed:
            snap = verdict.snapshot
            log.info("Deleting snapshot %s (disk %s, created %s): %s", snap.name, snap.disk, snap.created, verdict.rule)
            ref = hook.delete_snapshot(project, snap.name)
            if ref is not None:
                hook.wait_done(ref, 600)
            pruned.append(snap.name)
        return pruned


def instant_scopes(policy: BackupPolicy, resolution: Resolution | None) -> list[str]:
    """Where this policy's instant snapshots can be: its zones, their regions, and every resolved disk's scope."""
    spec = policy.spec
    zones = {i.zone for i in spec.instances or []} | set(spec.selector.zones if spec.selector else [])
    scopes = {f"zones/{z}" for z in zones} | {f"regions/{z.rsplit('-', 1)[0]}" for z in zones}
    scopes |= {disk_scope(d) for t in all_targets(resolution) for d in t["disks"]}
    return sorted(scopes)


def sweep_instant_snapshots(
    hook: ComputeEngineHook, policy: BackupPolicy, resolution: Resolution | None, converting: set[str]
) -> list[str]:
    """Delete the instant snapshots this policy made that are still there (a run's own delete step failed or never
    ran); one a conversion still reads is left for the next run."""
    labels = {
        vmlabels.MANAGED_BY: vmlabels.MANAGED_BY_VALUE,
        vmlabels.POLICY_NAMESPACE: policy.namespace,
        vmlabels.POLICY_NAME: policy.name,
    }
    swept: list[str] = []
    for scope in instant_scopes(policy, resolution):
        for instant in hook.list_instant_snapshots(policy.spec.project, scope, labels):
            if not made_by(policy, instant.labels) or instant.name in converting:
                continue
            log.warning(
                "Deleting instant snapshot %s (%s), left behind by run %s",
                instant.name,
                scope,
                instant.labels.get(vmlabels.RUN),
            )
            if delete_instant_snapshot(hook, policy.spec.project, scope, instant.name):
                swept.append(instant.name)
    return swept


def _name(verdict: Verdict) -> str:
    return verdict.snapshot.name
