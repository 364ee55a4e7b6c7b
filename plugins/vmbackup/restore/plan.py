"""The restore plan: which snapshots, which disks and which instance a restore creates, decided once.

The plan is read from Compute Engine (snapshots, the source VM, names already taken) through the hook and never
writes to it: the later steps only carry it out. A RestoreProblemError names the spec field to change.
"""

from __future__ import annotations

import logging
from typing import Any, NotRequired, TypedDict, cast

from vmbackup.compute.compute_library import compute_v1
from vmbackup.compute.hook import ComputeEngineHook, resource_name
from vmbackup.compute.instance_conversion import config_of_instance, instance_of_config
from vmbackup.model import labels as vmlabels
from vmbackup.model.backup_record import recorded_config
from vmbackup.model.identifiers import LockHolder
from vmbackup.model.instance_config import (
    EXTERNAL_NAT,
    ONE_TO_ONE_NAT,
    AccessConfig,
    AccountConfig,
    DiskConfig,
    InstanceConfig,
    NicConfig,
    attached_disk,
)
from vmbackup.model.restore import RESTORE_LABEL, Restore, restored_disk_name
from vmbackup.model.retention import parse_timestamp
from vmbackup.restore.hardware import add_gpus, require_offered
from vmbackup.restore.problems import RestoreProblemError
from vmbackup.vm.disks import Attachment, disk_from_snapshot

log = logging.getLogger(__name__)


class PlannedDisk(TypedDict):
    project: str  # where the disk is created (spec.targetProject, else the policy's project)
    zone: str
    name: str
    snapshot: str
    source_disk: str
    boot: bool
    device_name: str
    auto_delete: bool
    disk_type: str | None
    labels: dict[str, str]
    instance: str  # the instance the disk is for (for error records)
    snapshot_project: NotRequired[str]  # where the snapshot is (a backup project); absent: `project`
    replaces: NotRequired[Attachment]  # mode InPlace: the disk it replaces (recorded in its description)


class InPlacePlan(TypedDict):
    lock_run: str  # the run part of the lock label this restore holds the VM with
    lock_holder: NotRequired[LockHolder]  # who that lock names (this restore and its run)
    prior_status: str  # RUNNING: started again at the end (also after a failure); TERMINATED: left stopped
    originals: list[Attachment]  # what the VM has at the restored device names now
    replacements: list[Attachment]  # the restored disks, at the same device names
    delete_replaced: bool


class RestorePlan(TypedDict):
    project: str  # where the restored VM and its disks are (spec.targetProject, else the policy's project)
    source_project: NotRequired[str]  # the policy's project: the snapshots and the source VM (planned by this version)
    marker: str
    run: str | None
    snapshots: list[str]
    source_instance: str
    source_zone: str
    source_exists: bool
    target: str  # the restored instance (the source itself in mode InPlace)
    zone: str
    done: bool  # the target already exists and is this restore's: nothing left to do
    disks: list[PlannedDisk]
    instance: InstanceConfig  # the new VM (in mode InPlace: the source, with the restored disks)
    in_place: NotRequired[InPlacePlan]  # mode InPlace only (restore/in_place.py)


def _zone_of(url: str) -> str | None:
    parts = url.rstrip("/").split("/")
    return parts[parts.index("zones") + 1] if "zones" in parts else None


def _region_of_zone(zone: str) -> str:
    return zone.rsplit("-", 1)[0]


def _region_of(url: str | None) -> str | None:
    parts = (url or "").rstrip("/").split("/")
    return parts[parts.index("regions") + 1] if "regions" in parts else None


def planned_disk_resource(disk: PlannedDisk, why: str) -> compute_v1.Disk:
    """The disks.insert body of one planned disk (restores and drills): from its snapshot, with its labels."""
    return disk_from_snapshot(
        disk["project"],
        disk["zone"],
        disk["name"],
        disk["snapshot"],
        labels=disk["labels"],
        disk_type=disk["disk_type"],
        why=why,
        snapshot_project=disk.get("snapshot_project"),
    )


def is_ours(labels: Any, marker: str) -> bool:
    return bool(labels) and labels.get(RESTORE_LABEL) == marker


def choose_snapshots(restore: Restore, hook: ComputeEngineHook) -> tuple[str | None, list[compute_v1.Snapshot]]:
    """The snapshots of one backup run of the instance: the named one's run, the named run, or the newest
    run whose snapshots are all READY. Raises RestoreProblemError with the fix when there is none."""
    spec = restore.spec
    ours = {
        vmlabels.MANAGED_BY: vmlabels.MANAGED_BY_VALUE,
        vmlabels.POLICY_NAMESPACE: restore.namespace,
        vmlabels.POLICY_NAME: restore.policy_name,
        vmlabels.INSTANCE: restore.instance,
    }
    who = f"policy {restore.namespace}/{restore.policy_name} for instance {restore.instance}"
    run, where = spec.snapshot_run, restore.snapshots_in  # the policy's backup project, else its own
    if spec.snapshot is not None:
        named = hook.find_snapshot(where, spec.snapshot)
        if named is None:
            raise RestoreProblemError(
                f"spec.snapshot: snapshot {spec.snapshot} does not exist in project {where}; "
                f"list the snapshots of {who} with `vmbackupctl snapshots {restore.policy_name}`"
            )
        if any(named.labels.get(k) != v for k, v in ours.items()):
            raise RestoreProblemError(
                f"spec.snapshot: snapshot {spec.snapshot} was not made by {who}; pick one that was"
            )
        if named.status != "READY":
            raise RestoreProblemError(
                f"spec.snapshot: snapshot {spec.snapshot} is {named.status}, not READY; wait until it is READY "
                "or pick another"
            )
        run = named.labels.get(vmlabels.RUN)
    if run is not None:
        found = hook.list_snapshots(where, {**ours, vmlabels.RUN: run})
        if not found:
            raise RestoreProblemError(f"spec.snapshotRun: backup run {run} has no snapshot of {who}")
        pending = sorted(f"{s.name} ({s.status})" for s in found if s.status != "READY")
        if pending:
            raise RestoreProblemError(
                f"spec.snapshotRun: snapshots of run {run} are not all READY: {', '.join(pending)}; wait or pick "
                "another run"
            )
        return run, _one_per_disk(found)
    by_run: dict[str, list[compute_v1.Snapshot]] = {}
    for snap in hook.list_snapshots(where, ours):
        by_run.setdefault(snap.labels.get(vmlabels.RUN, ""), []).append(snap)
    complete = {r: snaps for r, snaps in by_run.items() if r and all(s.status == "READY" for s in snaps)}
    if not complete:
        raise RestoreProblemError(
            f"spec.snapshot: there is no READY snapshot of {who} in project {where}"
            + (f" (runs still uploading or failed: {', '.join(sorted(by_run))})" if by_run else "")
            + "; run a backup first, or wait until the running one is READY"
        )
    newest = max(complete, key=lambda r: max(parse_timestamp(s.creation_timestamp) for s in complete[r]))
    return newest, _one_per_disk(complete[newest])


def _one_per_disk(snapshots: list[compute_v1.Snapshot]) -> list[compute_v1.Snapshot]:
    seen: dict[str, compute_v1.Snapshot] = {}
    for snap in sorted(snapshots, key=lambda s: s.name):
        seen.setdefault(snap.source_disk, snap)
    return list(seen.values())


def source_zone(restore: Restore, snapshots: list[compute_v1.Snapshot]) -> str:
    """The source VM's zone: the one named, or the one its snapshots' disks were in."""
    zones = {z for z in (_zone_of(s.source_disk) for s in snapshots) if z}
    zone = restore.zone or (zones.pop() if len(zones) == 1 else None)
    if zone is None:
        raise RestoreProblemError("spec.zone: the snapshots come from several zones; name the source instance's zone")
    return zone


def plan_restore(restore: Restore, hook: ComputeEngineHook) -> RestorePlan:
    """Everything the later steps need, decided once from the snapshots, the source VM (read only) and the spec."""
    run, snapshots = choose_snapshots(restore, hook)
    from_zone = source_zone(restore, snapshots)
    new_instance, zone = restore.target_name, restore.spec.target_zone or from_zone
    source = hook.find_instance(restore.project, from_zone, restore.instance)
    config = _source_config(restore, source, snapshots, run)
    if config is None:
        _require_config(restore, from_zone, [resource_name(s.source_disk) for s in snapshots])
    boot_disk = _boot_disk(restore, config, snapshots)
    disks = _new_disks(restore, hook, snapshots, config, boot_disk, from_zone, zone)
    plan = RestorePlan(
        project=restore.target_project,
        source_project=restore.project,
        marker=restore.marker,
        run=run,
        snapshots=[d["snapshot"] for d in disks],  # the boot disk's first
        source_instance=restore.instance,
        source_zone=from_zone,
        source_exists=source is not None,
        target=new_instance,
        zone=zone,
        done=False,
        disks=disks,
        instance=_instance_config(restore, config, zone, disks),
    )
    if _already_restored(restore, hook, new_instance, zone):
        plan["done"] = True
        return plan
    _refuse_taken_disk_names(restore, hook, disks, zone)
    require_offered(restore, hook, plan["instance"], zone)
    log.info(
        "Restoring %s (%s/%s) as %s (%s/%s) from run %s: %s",
        restore.instance,
        restore.project,
        from_zone,
        new_instance,
        restore.target_project,
        zone,
        run,
        ", ".join(f"{d['snapshot']} -> {d['name']}" for d in disks),
    )
    return plan


def _source_config(
    restore: Restore, source: compute_v1.Instance | None, snapshots: list[compute_v1.Snapshot], run: str | None
) -> InstanceConfig | None:
    """The source VM's configuration: read from the VM, or with it gone, as the backup run recorded it with the
    snapshots (None when it did not)."""
    if source is not None:
        return config_of_instance(source)
    config = recorded_config(s.description for s in snapshots)
    if config is not None:
        log.info("source instance %s is gone: using its configuration recorded by run %s", restore.instance, run)
    return config


def _new_disks(
    restore: Restore,
    hook: ComputeEngineHook,
    snapshots: list[compute_v1.Snapshot],
    source: InstanceConfig | None,
    boot_disk: str,
    from_zone: str,
    zone: str,
) -> list[PlannedDisk]:
    """The disk each snapshot makes for the new VM (boot first), typed and attached as the backed-up one was."""
    new_instance = restore.target_name
    disks: list[PlannedDisk] = []
    for snap in snapshots:
        source_disk = resource_name(snap.source_disk)
        boot = source_disk == boot_disk
        link = attached_disk(source, source_disk)
        original = hook.find_disk(restore.project, from_zone, source_disk)
        disks.append(
            PlannedDisk(
                project=restore.target_project,
                zone=zone,
                name=restored_disk_name(new_instance, source_disk, boot),
                snapshot=snap.name,
                source_disk=source_disk,
                boot=boot,
                device_name=link["device_name"] if link is not None else source_disk,
                auto_delete=link["auto_delete"] if link is not None else boot,
                disk_type=resource_name(original.type_) if original is not None and original.type_ else None,
                labels={RESTORE_LABEL: restore.marker, vmlabels.MANAGED_BY: vmlabels.MANAGED_BY_VALUE},
                instance=new_instance,
                snapshot_project=restore.snapshots_in,
            )
        )
    disks.sort(key=lambda d: (not d["boot"], d["name"]))
    names = [d["name"] for d in disks]
    if len(set(names)) != len(names):
        raise RestoreProblemError(
            f"spec.targetName: restored disk names collide ({', '.join(names)}); choose another name"
        )
    return disks


def _already_restored(restore: Restore, hook: ComputeEngineHook, new_instance: str, zone: str) -> bool:
    """The new VM exists and is this restore's (nothing left to do); one of another owner's name is refused."""
    existing = hook.find_instance(restore.target_project, zone, new_instance)
    if existing is None:
        return False
    if not is_ours(existing.labels, restore.marker):
        raise RestoreProblemError(
            f"spec.targetName: instance {new_instance} already exists in zone {zone} of project "
            f"{restore.target_project}; choose another targetName "
            "(the existing instance was not touched)"
        )
    log.info("instance %s in %s was already restored by this VMRestore: nothing to do", new_instance, zone)
    return True


def _refuse_taken_disk_names(restore: Restore, hook: ComputeEngineHook, disks: list[PlannedDisk], zone: str) -> None:
    for disk in disks:
        found = hook.find_disk(disk["project"], zone, disk["name"])
        if found is not None and not is_ours(found.labels, restore.marker):
            raise RestoreProblemError(
                f"spec.targetName: disk {disk['name']} already exists in zone {zone} of project {disk['project']} and was not created by this "
                "restore; choose another targetName (the existing disk was not touched)"
            )


def _boot_disk(restore: Restore, source: InstanceConfig | None, snapshots: list[compute_v1.Snapshot]) -> str:
    backed_up = [resource_name(s.source_disk) for s in snapshots]
    wanted = restore.spec.overrides.boot_disk
    if wanted is not None:
        if wanted not in backed_up:
            raise RestoreProblemError(
                f"spec.overrides.bootDisk: the run has no snapshot of disk {wanted} (it has {', '.join(backed_up)})"
            )
        return wanted
    if source is not None:
        boot = next((d["disk"] for d in source["disks"] if d["boot"]), None)
        if boot not in backed_up:
            raise RestoreProblemError(
                f"the backup run has no snapshot of boot disk {boot} of {restore.instance} (it has "
                f"{', '.join(backed_up)}); set spec.overrides.bootDisk to the disk to boot from"
            )
        return str(boot)
    if len(backed_up) == 1:
        return backed_up[0]
    raise RestoreProblemError(
        f"spec.overrides.bootDisk: source instance {restore.instance} no longer exists, so which of "
        f"{', '.join(backed_up)} is the boot disk is unknown; name it"
    )


def _require_config(restore: Restore, source_zone: str, backed_up: list[str]) -> None:
    """With the source VM gone there is nothing to copy: every field that cannot be defaulted must be set."""
    over = restore.spec.overrides
    missing = [
        f"spec.overrides.{f}"
        for f, v in (("machineType", over.machine_type), ("networkInterfaces", over.network_interfaces))
        if v is None
    ]
    if over.boot_disk is None and len(backed_up) > 1:
        missing.append("spec.overrides.bootDisk")
    if missing:
        raise RestoreProblemError(
            f"{missing[0]}: source instance {restore.instance} no longer exists in {source_zone}, so its "
            f"configuration cannot be copied; set {', '.join(missing)}"
            + (f" (bootDisk: one of {', '.join(backed_up)})" if "spec.overrides.bootDisk" in missing else "")
        )


def _network_url(project: str, ref: str) -> str:
    """A bare network name as the partial URL instances.insert expects (URLs are kept)."""
    return ref if "/" in ref else f"projects/{project}/global/networks/{ref}"


def _subnetwork_url(project: str, zone: str, ref: str) -> str:
    """A bare subnetwork name, in the target zone's region (URLs are kept)."""
    return ref if "/" in ref else f"projects/{project}/regions/{_region_of_zone(zone)}/subnetworks/{ref}"


def _instance_config(
    restore: Restore, source: InstanceConfig | None, zone: str, disks: list[PlannedDisk]
) -> InstanceConfig:
    """The restored VM: the source's configuration (None: it is gone and recorded nothing) with the overrides."""
    over, known = restore.spec.overrides, source if source is not None else _NOTHING_KNOWN
    project = restore.target_project
    if over.network_interfaces is not None:
        nics = [
            _in_region(
                NicConfig(
                    network=_network_url(project, nic.network or "default"),
                    subnetwork=_subnetwork_url(project, zone, nic.subnetwork) if nic.subnetwork else None,
                    access_configs=[AccessConfig(type=ONE_TO_ONE_NAT, name=EXTERNAL_NAT)] if nic.external_ip else [],
                ),
                zone,
                "spec.overrides.networkInterfaces[].subnetwork to one",
            )
            for nic in over.network_interfaces
        ]
    else:
        nics = [_copied_nic(nic, zone) for nic in known["network_interfaces"]]
    if over.service_account is not None:
        accounts = [AccountConfig(email=over.service_account.email, scopes=list(over.service_account.scopes))]
    else:
        accounts = [AccountConfig(email=a["email"], scopes=list(a["scopes"])) for a in known["service_accounts"]]
    labels = dict(over.labels) if over.labels is not None else dict(known["labels"])
    labels[RESTORE_LABEL] = restore.marker
    new = InstanceConfig(
        name=restore.restored_instance,
        machine_type=over.machine_type or known["machine_type"],  # _require_config asked for one if none is known
        network_interfaces=nics,
        tags=list(over.network_tags) if over.network_tags is not None else list(known["tags"]),
        labels=labels,
        service_accounts=accounts,
        disks=_attachments(disks),
    )
    return add_gpus(new, known)  # the source's GPUs, and the host maintenance policy they need


# What a restore copies from a source that is gone and recorded nothing: nothing (never changed, only read).
_NOTHING_KNOWN = InstanceConfig(
    name="", machine_type="", network_interfaces=[], tags=[], labels={}, service_accounts=[], disks=[]
)


def _copied_nic(nic: NicConfig, zone: str) -> NicConfig:
    """The source's network interface for the new VM, whose zone must be in the region of its subnetwork."""
    copied = NicConfig(network=nic["network"], subnetwork=nic["subnetwork"], access_configs=list(nic["access_configs"]))
    return _in_region(copied, zone, "spec.overrides.networkInterfaces[].subnetwork to one")


def _in_region(nic: NicConfig, zone: str, fix: str) -> NicConfig:
    """A VM's subnetwork is in its zone's region (Compute Engine refuses the insert otherwise): refused here first."""
    region = _region_of(nic["subnetwork"])
    if region is not None and region != _region_of_zone(zone):
        raise RestoreProblemError(
            f"spec.overrides.networkInterfaces: target zone {zone} is not in region {region} of subnetwork "
            f"{resource_name(str(nic['subnetwork']))}; set {fix} in region {_region_of_zone(zone)}, or "
            "spec.targetZone to a zone of its region"
        )
    return nic


def _attachments(disks: list[PlannedDisk]) -> list[DiskConfig]:
    """The planned disks as the new VM attaches them (boot first)."""
    return [
        DiskConfig(disk=d["name"], device_name=d["device_name"], boot=d["boot"], auto_delete=d["auto_delete"])
        for d in disks
    ]


def instance_resource(plan: RestorePlan) -> compute_v1.Instance:
    """The instances.insert body: the planned disks attached by name, the copied (or overridden) config."""
    config = plan["instance"]
    if "disks" not in config:  # planned by an earlier version, whose instance config left out its name and disks
        config = cast(InstanceConfig, {**config, "name": plan["target"], "disks": _attachments(plan["disks"])})
    description = f"restored by vmbackup-operator from {plan['source_instance']} (run {plan['run']})"
    return instance_of_config(config, plan["project"], plan["zone"], description)
