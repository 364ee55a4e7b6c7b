"""Cutting a VM's snapshots: one per disk, named per run and disk, so any retry finds what an earlier try made.

Shared by every step that cuts snapshots (the per-VM snapshot step and the down window), so the names, labels
and the "already made by this run" rule are defined once. With spec.snapshot.method instant the cut is an
instant snapshot per disk; convert_instant_snapshots then makes the standard snapshots from them (same names and
labels as a standard cut) and remove_instant_snapshots deletes them. Every function reads its state back from
Compute Engine, so a retried or repeated step finds what an earlier one did.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from vmbackup.airflow_compat import AirflowFailException
from vmbackup.backup.resolution import DiskTarget, Target, disk_scope
from vmbackup.backup.slot_check import slot_label
from vmbackup.compute.hook import (
    INSTANT,
    STANDARD,
    ComputeEngineHook,
    OperationRef,
)
from vmbackup.compute.instant_snapshot_calls import InstantSnapshotLimitError, resource_url
from vmbackup.model import labels as vmlabels
from vmbackup.model.archive_rungs import cut_type
from vmbackup.model.backup_record import config_of_record, describe, disk_labels
from vmbackup.model.identifiers import instant_snapshot_name
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


# A conversion still running: its source instant snapshot must stay until it ends.
CONVERTING = ("CREATING", "UPLOADING")
# How long removing an instant snapshot waits for it to leave CREATING (it is created in seconds).
INSTANT_CREATING_WAIT_SECONDS = 120.0


def _disk_fields(
    policy: BackupPolicy, t: Target, disk: DiskTarget, slot: datetime | None
) -> tuple[dict[str, str], str]:
    """(labels, description) of the snapshot of one disk: the same for a standard cut, an instant one and its
    conversion."""
    config = config_of_record(t.get("record"))
    labels = snapshot_labels(policy, t, slot) | disk_labels(config, disk["name"])
    description = describe(f"vmbackup {policy.namespace}/{policy.name} of {t['instance']}/{disk['name']}", config)
    return labels, description


def cut_snapshots(
    hook: ComputeEngineHook, policy: BackupPolicy, t: Target, slot: datetime | None
) -> list[dict[str, Any]]:
    """Start one cut per disk of the target; returns [{"name", "disk", "operation", "kind", ...}] (operation None if
    found).

    Each item names the "project" it lives in: a standard snapshot the policy's snapshot project (spec.snapshot.project,
    a backup project, else the workload project), an instant snapshot its disk's project.

    kind "standard": a snapshot (disks.createSnapshot, or snapshots.insert for a regional disk or a backup project).
    kind "instant" (spec.snapshot.method instant): an instant snapshot, with its "scope" and the "snapshot" it converts to. A disk
    whose instant snapshot Compute Engine refuses for a per-disk limit (32 instant snapshots, one per 30 s) gets a
    standard snapshot at once instead, noted in "fallback": the VM is already stopped, and waiting out the interval
    would keep it down longer than a standard snapshot's CREATING phase. All disks at once: Compute Engine runs
    them in parallel. A snapshot of the deterministic name made by another run is refused rather than adopted.
    """
    cuts: list[dict[str, Any]] = []
    for disk in t["disks"]:
        labels, description = _disk_fields(policy, t, disk, slot)
        fallback = None
        if policy.spec.snapshot.method == "instant":
            try:
                cuts.append(_cut_instant(hook, t, disk, labels, description))
                continue
            except InstantSnapshotLimitError as exc:
                fallback = f"instant snapshot refused by Compute Engine ({exc}); a standard snapshot was taken instead"
                log.warning("%s/%s: %s", t["instance"], disk["name"], fallback)
        item = _cut_standard(hook, policy, t, disk, labels, description, cut_type(policy.spec, slot))
        if fallback:
            item["fallback"] = fallback
        cuts.append(item)
    return cuts


def cuts_made(hook: ComputeEngineHook, policy: BackupPolicy, t: Target) -> list[dict[str, Any]] | None:
    """This run's cut of every disk, as cut_snapshots returns them (operation None), when an earlier try cut them all;
    else None. With method instant a disk's cut is its instant snapshot, or the standard snapshot once converted (or
    cut instead at a limit): looking for the standard name alone would miss an instant cut and stop the VM again."""
    found: list[dict[str, Any]] = []
    for disk in t["disks"]:
        if policy.spec.snapshot.method == "instant":
            scope, name = disk_scope(disk), instant_snapshot_name(disk["snapshot"])
            instant = hook.find_instant_snapshot(t["project"], scope, name)
            if instant is not None and instant.labels.get(vmlabels.RUN) == t["run"]:
                found.append(
                    {
                        "name": name,
                        "disk": disk["name"],
                        "operation": None,
                        "kind": INSTANT,
                        "scope": scope,
                        "snapshot": disk["snapshot"],
                        "project": t["project"],
                    }
                )
                continue
        where = policy.spec.snapshot_project
        snap = hook.find_snapshot(where, disk["snapshot"])
        if snap is None or snap.labels.get(vmlabels.RUN) != t["run"]:
            return None
        found.append(
            {"name": disk["snapshot"], "disk": disk["name"], "operation": None, "kind": STANDARD, "project": where}
        )
    return found


def _cut_standard(
    hook: ComputeEngineHook,
    policy: BackupPolicy,
    t: Target,
    disk: DiskTarget,
    labels: dict[str, str],
    description: str,
    snapshot_type: str | None,
) -> dict[str, Any]:
    """One disk's snapshot, in the policy's snapshot project. disks.createSnapshot is zonal and creates in the disk's
    own project, so a regional disk, or a snapshot written to a backup project, goes through snapshots.insert with
    sourceDisk naming the disk in the workload project (compute/snapshot_calls.py)."""
    settings, where = policy.spec.snapshot, policy.spec.snapshot_project
    common: dict[str, Any] = {
        "labels": labels,
        "storage_location": settings.storage_location,
        "guest_flush": policy.spec.consistency == "guestFlush",
        "description": description,
        "snapshot_type": snapshot_type,  # None: Compute Engine's default, STANDARD (the body of earlier versions)
    }
    ref: OperationRef | None
    if disk.get("regional") or where != t["project"]:
        source = resource_url(t["project"], disk_scope(disk), "disks", disk["name"])
        ref = hook.insert_snapshot(where, disk["snapshot"], source_disk=source, **common)
    else:
        ref = hook.create_snapshot(t["project"], disk["zone"], disk["name"], disk["snapshot"], **common)
    if ref is None:
        _check_ours(hook.find_snapshot(where, disk["snapshot"]), t, f"a snapshot named {disk['snapshot']} in {where}")
    else:
        log.info("Creating snapshot %s of disk %s (%s) in %s", disk["snapshot"], disk["name"], t["instance"], where)
    return {"name": disk["snapshot"], "disk": disk["name"], "operation": ref, "kind": STANDARD, "project": where}


def _cut_instant(
    hook: ComputeEngineHook, t: Target, disk: DiskTarget, labels: dict[str, str], description: str
) -> dict[str, Any]:
    scope, name = disk_scope(disk), instant_snapshot_name(disk["snapshot"])
    ref = hook.insert_instant_snapshot(t["project"], scope, disk["name"], name, labels=labels, description=description)
    if ref is None:
        _check_ours(hook.find_instant_snapshot(t["project"], scope, name), t, f"an instant snapshot named {name}")
    else:
        log.info("Creating instant snapshot %s of disk %s (%s)", name, disk["name"], t["instance"])
    return {
        "name": name,
        "disk": disk["name"],
        "operation": ref,
        "kind": INSTANT,
        "scope": scope,
        "snapshot": disk["snapshot"],
        "project": t["project"],  # an instant snapshot stays with its disk, in the workload project
    }


def _check_ours(existing: Any, t: Target, what: str) -> None:
    """A resource of our deterministic name exists: fine when this run made it (an earlier try), refused otherwise."""
    if existing is None or existing.labels.get(vmlabels.RUN) != t["run"]:
        raise AirflowFailException(f"{what} exists and was not made by this run; delete it or rename the disk")
    log.info("%s already exists (made by an earlier try of this run)", what)


def convert_instant_snapshots(
    hook: ComputeEngineHook, policy: BackupPolicy, t: Target, cuts: list[dict[str, Any]], slot: datetime | None
) -> list[dict[str, Any]]:
    """The standard snapshot of each instant cut (snapshots.insert with sourceInstantSnapshot), standard cuts as they
    are: the items the READY wait looks at. Names and labels are those a standard cut would have had."""
    disks = {d["name"]: d for d in t["disks"]}
    where = policy.spec.snapshot_project
    converted: list[dict[str, Any]] = []
    for item in cuts:
        if item.get("kind") != INSTANT:
            converted.append(item)
            continue
        labels, description = _disk_fields(policy, t, disks[item["disk"]], slot)
        ref = hook.insert_snapshot(
            where,
            item["snapshot"],
            labels=labels,
            storage_location=policy.spec.snapshot.storage_location,
            source_instant_snapshot=resource_url(t["project"], item["scope"], "instantSnapshots", item["name"]),
            description=description,
            snapshot_type=cut_type(policy.spec, slot),
        )
        if ref is None:
            _check_ours(
                hook.find_snapshot(where, item["snapshot"]), t, f"a snapshot named {item['snapshot']} in {where}"
            )
        else:
            log.info("Converting instant snapshot %s to snapshot %s", item["name"], item["snapshot"])
        converted.append(
            {
                "name": item["snapshot"],
                "disk": item["disk"],
                "operation": ref,
                "kind": STANDARD,
                "instant_snapshot": item["name"],
                "project": where,
            }
        )
    return converted


def remove_instant_snapshots(hook: ComputeEngineHook, policy: BackupPolicy, t: Target) -> dict[str, list[str]]:
    """Delete the instant snapshots this run cut for the target's disks, whatever happened before.

    Names come from the target (not from an earlier step's result), so this also cleans up after a cut step that
    failed half way. An instant snapshot is deleted only when it carries this policy's and this run's labels, and
    kept while a standard snapshot is still being made from it (prune sweeps it on a later run).
    Returns {"deleted": [...], "kept": [...]}.
    """
    done: dict[str, list[str]] = {"deleted": [], "kept": []}
    for disk in t["disks"]:
        scope, name = disk_scope(disk), instant_snapshot_name(disk["snapshot"])
        found = hook.find_instant_snapshot(t["project"], scope, name)
        if found is None or not made_by(policy, found.labels, t["run"]):
            continue
        standard = hook.find_snapshot(policy.spec.snapshot_project, disk["snapshot"])
        converting = standard is not None and standard.status in CONVERTING and bool(standard.source_instant_snapshot)
        if converting:
            log.warning("instant snapshot %s is kept: snapshot %s is still being made from it", name, disk["snapshot"])
        deleted = not converting and delete_instant_snapshot(hook, t["project"], scope, name)
        done["deleted" if deleted else "kept"].append(name)
    return done


def made_by(policy: BackupPolicy, labels: Any, run: str | None = None) -> bool:
    """Whether a resource's labels say this policy (and, given, this run) made it: the only ones we ever delete."""
    ours = (
        labels.get(vmlabels.MANAGED_BY) == vmlabels.MANAGED_BY_VALUE
        and labels.get(vmlabels.POLICY_NAMESPACE) == policy.namespace
        and labels.get(vmlabels.POLICY_NAME) == policy.name
    )
    return ours and (run is None or labels.get(vmlabels.RUN) == run)


def delete_instant_snapshot(hook: ComputeEngineHook, project: str, scope: str, name: str) -> bool:
    """Delete one instant snapshot and wait until it is gone; False when it is still CREATING after the wait.

    Compute Engine refuses to delete an instant snapshot that is still CREATING, so that state is waited out first.
    """
    deadline = time.monotonic() + INSTANT_CREATING_WAIT_SECONDS
    while True:
        found = hook.find_instant_snapshot(project, scope, name)
        if found is None:
            return True
        if found.status != "CREATING":
            break
        if time.monotonic() >= deadline:
            log.warning("instant snapshot %s is still CREATING; it is left for prune to delete", name)
            return False
        time.sleep(1.0)
    ref = hook.delete_instant_snapshot(project, scope, name)
    if ref is not None:
        hook.wait_done(ref, 600)
    log.info("Deleted instant snapshot %s (%s)", name, scope)
    return True
