"""Which instances and disks a run backs up, resolved when the run starts (so new VMs are picked up).

A target is plain JSON data (it travels through XCom into each mapped task group), carrying everything a
step needs: the instance, its zone and tier, and each disk with the snapshot name this run gives it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from vmbackup.backup import preflight
from vmbackup.backup.steps import RESOLVE
from vmbackup.model import labels as vmlabels
from vmbackup.model.identifiers import LockHolder, lock_holder, run_hash, snapshot_name
from vmbackup.model.policy import BackupPolicy

if TYPE_CHECKING:
    from vmbackup.compute.hook import ComputeEngineHook
    from vmbackup.model.backup_record import InstanceRecord

log = logging.getLogger(__name__)

NO_TIER = "instances"  # group of a policy without tiers


class DiskTarget(TypedDict):
    name: str
    zone: str  # the disk's zone, or its region when `regional`
    snapshot: str
    regional: NotRequired[bool]  # a regional persistent disk (regionDisks, regionInstantSnapshots)


def disk_scope(disk: DiskTarget) -> str:
    """Where the disk lives, as Compute Engine's URLs say it: zones/Z or regions/R."""
    return f"{'regions' if disk.get('regional') else 'zones'}/{disk['zone']}"


class Target(TypedDict):
    project: str
    zone: str
    instance: str
    tier: str | None
    run: str
    holder: NotRequired[LockHolder]  # who the lock names (a target of an older DAG version has none)
    status: str  # at resolve time; the stop step reads it again right before acting
    disks: list[DiskTarget]
    record: NotRequired[InstanceRecord]  # what a restore needs once the VM is gone (backup_record.py)
    # Stop it with instances.stop discardLocalSsd=true: it has a Local SSD and spec.stop.discardLocalSsd is true
    # (preflight.py). Absent: the VM has no Local SSD (a VM with one and the switch off is skipped, never a Target).
    discard_local_ssd: NotRequired[bool]
    # The instance's lock labels as the resolve step read them, and when (epoch seconds): the lock wait's first look
    # while no older than one of its own looks (batch_operators.DownWindowOperator); absent in older DAG versions.
    lock_labels: NotRequired[dict[str, str]]
    read_at: NotRequired[float]


class Skipped(TypedDict):
    instance: str
    zone: str
    reason: str


class Resolution(TypedDict):
    groups: dict[str, list[Target]]
    batches: NotRequired[dict[str, list[list[Target]]]]  # each group's VMs as the down-window steps take them
    skipped: list[Skipped]
    errors: list[Skipped]  # instances that should be backed up but cannot (missing VM, unknown disk)
    warnings: NotRequired[list[Skipped]]  # backed up, with a risk the resolve step could not rule out (preflight.py)
    slot: NotRequired[str | None]  # the scheduled slot (ISO 8601, UTC); None for a run asked for by hand
    missed: NotRequired[dict[str, Any] | None]  # a MissedSlot (JSON): the run touches no VM


def group_keys(policy: BackupPolicy) -> list[str]:
    """Task-group keys in stop order: the policy's tiers, or one group."""
    return list(policy.spec.tiers) if policy.spec.tiers else [NO_TIER]


def _persistent_disks(instance: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(name, zone) of each attached persistent zonal disk, and (name, region) of each regional one, in attach order.

    A Local SSD (type SCRATCH) is left out: it is no persistent disk and cannot be snapshotted (preflight.py)."""
    zonal: list[tuple[str, str]] = []
    regional: list[tuple[str, str]] = []
    for attached in instance.disks:
        if attached.type_ and attached.type_ != "PERSISTENT":
            continue
        parts = (attached.source or "").rstrip("/").split("/")
        for scope, found in (("zones", zonal), ("regions", regional)):
            if scope in parts:
                found.append((parts[-1], parts[parts.index(scope) + 1]))
    return zonal, regional


def resolve_targets(policy: BackupPolicy, run_id: str, hook: ComputeEngineHook) -> Resolution:
    """Every VM the policy names or selects now, as a Target in its group, or as skipped / an error with why."""
    resolver = _Resolver(policy, run_id)
    spec = policy.spec
    if spec.instances is not None:
        for ref in spec.instances:
            instance = hook.find_instance(spec.project, ref.zone, ref.name)
            if instance is None:
                resolver.errors.append(Skipped(instance=ref.name, zone=ref.zone, reason="instance not found"))
                continue
            resolver.add(instance, ref.zone, ref.tier, ref.disks)
    elif spec.selector is not None:
        selector = spec.selector
        for instance in hook.list_instances(spec.project, selector.zones, dict(selector.match_labels)):
            zone = instance.zone.rstrip("/").rsplit("/", 1)[-1]
            tier: str | None = None
            if selector.tier_label is not None:
                tier = instance.labels.get(selector.tier_label)
                if tier not in resolver.groups:
                    reason = f"label {selector.tier_label}={tier!r} is not one of the tiers {spec.tiers}"
                    resolver.skipped.append(Skipped(instance=instance.name, zone=zone, reason=reason))
                    continue
            resolver.add(instance, zone, tier, None)
    return resolver.resolution()


class _Resolver:
    """One resolve step's findings so far: the groups' targets, what is skipped, what is in error, warnings."""

    def __init__(self, policy: BackupPolicy, run_id: str):
        self.policy, self.run_id = policy, run_id
        self.run = run_hash(policy.dag_id, run_id)
        self.holder = lock_holder("policy", policy.namespace, policy.name, run_id)
        self.groups: dict[str, list[Target]] = {key: [] for key in group_keys(policy)}
        self.skipped: list[Skipped] = []
        self.errors: list[Skipped] = []
        self.warnings: list[Skipped] = []

    def add(self, instance: Any, zone: str, tier: str | None, wanted: list[str] | None) -> None:
        """The instance's target in its group, unless its disks or a check before stopping (preflight.py) refuse."""
        from vmbackup.compute.instance_conversion import config_of_instance  # google-cloud-compute: not at DAG parse
        from vmbackup.model.backup_record import record_of

        disks = self._disks(instance, zone, wanted)
        if disks is None:
            return
        verdict = preflight.check(self.policy.spec, instance)
        if verdict.skip:
            log.warning("Skipping %s (%s): %s", instance.name, zone, verdict.skip)
            self.skipped.append(Skipped(instance=instance.name, zone=zone, reason=verdict.skip))
            return
        if verdict.warning:
            log.warning("%s (%s): %s", instance.name, zone, verdict.warning)
            self.warnings.append(Skipped(instance=instance.name, zone=zone, reason=verdict.warning))
        spec = self.policy.spec
        found = Target(
            project=spec.project,
            zone=zone,
            instance=instance.name,
            tier=tier,
            run=self.run,
            holder=self.holder,
            status=instance.status,
            disks=disks,
        )
        if verdict.discard_local_ssd:
            found["discard_local_ssd"] = True
        found["lock_labels"] = {k: v for k, v in instance.labels.items() if k in vmlabels.LOCK_LABELS}
        found["read_at"] = time.time()
        found["record"] = record_of(config_of_instance(instance))
        self.groups[tier or NO_TIER].append(found)

    def _disks(self, instance: Any, zone: str, wanted: list[str] | None) -> list[DiskTarget] | None:
        """The disks to snapshot, each with this run's snapshot name; None (and an error) when there are none."""
        zonal, regional = _persistent_disks(instance)
        attached = [(n, z, False) for n, z in zonal] + [(n, r, True) for n, r in regional]
        names = [name for name, _, _ in attached]
        if wanted is not None:
            unknown = [d for d in wanted if d not in names]
            if unknown:
                reason = (
                    f"disks {', '.join(unknown)} are not attached to the instance (attached: "
                    f"{', '.join(names) or 'none'}); fix spec.instances[].disks"
                )
                self.errors.append(Skipped(instance=instance.name, zone=zone, reason=reason))
                return None
            attached = [d for d in attached if d[0] in wanted]
        if not attached:
            self.errors.append(Skipped(instance=instance.name, zone=zone, reason="no persistent disk attached"))
            return None
        spec, disks = self.policy.spec, []
        for name, location, is_regional in attached:
            snapshot = snapshot_name(self.policy.dag_id, self.run_id, spec.project, location, name)
            disk = DiskTarget(name=name, zone=location, snapshot=snapshot)
            if is_regional:
                disk["regional"] = True
            disks.append(disk)
        return disks

    def resolution(self) -> Resolution:
        for members in self.groups.values():
            members.sort(key=lambda t: (t["zone"], t["instance"]))
        found = Resolution(groups=self.groups, skipped=self.skipped, errors=self.errors)
        if self.warnings:
            found["warnings"] = self.warnings
        return found


def vm_key(t: Target | dict[str, Any]) -> str:
    """One VM of a batch, as a key that survives JSON (a trigger's kwargs, an XCom)."""
    return f"{t['zone']}/{t['instance']}"


def batched(
    policy: BackupPolicy, groups: dict[str, list[Target]], max_map_length: int
) -> dict[str, list[list[Target]]]:
    """Each group's VMs in batches, one mapped task instance per batch, so no group maps to more instances than
    Airflow's max_map_length allows. A rolling tier (maxUnavailable below its size) is one batch: its cap is kept
    inside one step. Otherwise one VM per batch while the limit allows, so each VM's window runs on its own."""
    batches: dict[str, list[list[Target]]] = {}
    for key, members in groups.items():
        if not members:
            batches[key] = []
        elif policy.spec.unavailable_cap(len(members)) < len(members):
            batches[key] = [list(members)]
        else:
            size = -(-len(members) // max(1, max_map_length))
            batches[key] = [members[i : i + size] for i in range(0, len(members), size)]
    return batches


def pulled_resolution(context: Any) -> Resolution | None:
    """The resolve step's result, as later steps of the run pull it (None when it failed)."""
    value = context["ti"].xcom_pull(task_ids=RESOLVE)
    return value if isinstance(value, dict) and "groups" in value else None  # type: ignore[return-value]


def all_targets(resolution: Resolution | None) -> list[Target]:
    if not resolution:
        return []
    return [t for members in resolution["groups"].values() for t in members]
