"""Cutting a VM's snapshots: one per disk, named per run and disk, so any retry finds what an earlier try made.

Shared by every step that cuts snapshots (the per-VM snapshot step and the down window), so the names, labels
and the "already made by this run" rule are defined once.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from vmbackup.airflow_compat import AirflowFailException
from vmbackup.backup.resolution import Target
from vmbackup.backup.slot_check import slot_label
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.model import labels as vmlabels
from vmbackup.model.backup_record import describe, disk_labels, record_fields
from vmbackup.model.policy import BackupPolicy

log = logging.getLogger(__name__)


def snapshot_labels(policy: BackupPolicy, t: Target, slot: datetime | None = None) -> dict[str, str]:
    """The labels every snapshot of this run carries: the user's, then ours (ours win)."""
    labels = dict(policy.spec.snapshot.labels)
    labels.update(
        {
            vmlabels.MANAGED_BY: vmlabels.MANAGED_BY_VALUE,
            vmlabels.POLICY_NAMESPACE: policy.namespace,
            vmlabels.POLICY_NAME: policy.name,
            vmlabels.RUN: t["run"],
            vmlabels.INSTANCE: t["instance"],
            vmlabels.CONSISTENCY: vmlabels.consistency_value(policy.spec.consistency),
        }
    )
    if slot is not None:
        labels[vmlabels.SLOT] = slot_label(slot)
    return labels


def cut_snapshots(
    hook: ComputeEngineHook, policy: BackupPolicy, t: Target, slot: datetime | None
) -> list[dict[str, Any]]:
    """Start one snapshot per disk of the target; returns [{"name", "disk", "operation"}] (operation None if found).

    All disks at once: Compute Engine runs them in parallel. A snapshot of the deterministic name made by another
    run is refused rather than adopted.
    """
    labels = snapshot_labels(policy, t, slot)
    record = record_fields(t.get("record"))
    cuts: list[dict[str, Any]] = []
    for disk in t["disks"]:
        ref = hook.create_snapshot(
            t["project"],
            disk["zone"],
            disk["name"],
            disk["snapshot"],
            labels=labels | disk_labels(record, disk["name"]),
            storage_location=policy.spec.snapshot.storage_location,
            guest_flush=policy.spec.consistency == "guestFlush",
            description=describe(
                f"vmbackup {policy.namespace}/{policy.name} of {t['instance']}/{disk['name']}", record
            ),
        )
        if ref is None:
            existing = hook.find_snapshot(t["project"], disk["snapshot"])
            if existing is None or existing.labels.get(vmlabels.RUN) != t["run"]:
                raise AirflowFailException(
                    f"a snapshot named {disk['snapshot']} exists and was not made by this run; "
                    "delete it or rename the disk"
                )
            log.info("snapshot %s already exists (made by an earlier try of this run)", disk["snapshot"])
        else:
            log.info("Creating snapshot %s of disk %s (%s)", disk["snapshot"], disk["name"], t["instance"])
        cuts.append({"name": disk["snapshot"], "disk": disk["name"], "operation": ref})
    return cuts
