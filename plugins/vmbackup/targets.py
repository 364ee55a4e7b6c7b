"""Which instances and disks a run backs up, resolved when the run starts (so new VMs are picked up).

A target is plain JSON data (it travels through XCom into each mapped task group), carrying everything a
step needs: the instance, its zone and tier, and each disk with the snapshot name this run gives it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from vmbackup.identifiers import run_hash, snapshot_name
from vmbackup.policy import BackupPolicy

if TYPE_CHECKING:
    from vmbackup.compute_engine import ComputeEngineHook

NO_TIER = "instances"  # group of a policy without tiers


class DiskTarget(TypedDict):
    name: str
    zone: str
    snapshot: str


class Target(TypedDict):
    project: str
    zone: str
    instance: str
    tier: str | None
    run: str
    status: str  # at resolve time; the stop step reads it again right before acting
    disks: list[DiskTarget]


class Skipped(TypedDict):
    instance: str
    zone: str
    reason: str


class Resolution(TypedDict):
    groups: dict[str, list[Target]]
    skipped: list[Skipped]
    errors: list[Skipped]  # instances that should be backed up but cannot (missing VM, unknown disk)


def group_keys(policy: BackupPolicy) -> list[str]:
    """Task-group keys in stop order: the policy's tiers, or one group."""
    return list(policy.spec.tiers) if policy.spec.tiers else [NO_TIER]


def _persistent_disks(instance: Any) -> list[tuple[str, str]]:
    """(name, zone) of each attached persistent zonal disk."""
    found = []
    for attached in instance.disks:
        if attached.type_ and attached.type_ != "PERSISTENT":
            continue
        source = attached.source or ""
        parts = source.rstrip("/").split("/")
        if "zones" in parts:
            zone = parts[parts.index("zones") + 1]
        else:
            continue  # regional disks are snapshotted through regionDisks; not supported here
        found.append((parts[-1], zone))
    return found


def resolve_targets(policy: BackupPolicy, run_id: str, hook: ComputeEngineHook) -> Resolution:
    spec = policy.spec
    run = run_hash(policy.dag_id, run_id)
    groups: dict[str, list[Target]] = {key: [] for key in group_keys(policy)}
    skipped: list[Skipped] = []
    errors: list[Skipped] = []

    def target(instance: Any, zone: str, tier: str | None, wanted: list[str] | None) -> Target | None:
        attached = _persistent_disks(instance)
        names = [name for name, _ in attached]
        if wanted is not None:
            unknown = [d for d in wanted if d not in names]
            if unknown:
                errors.append(
                    Skipped(
                        instance=instance.name,
                        zone=zone,
                        reason=f"disks {', '.join(unknown)} are not attached to the instance (attached: "
                        f"{', '.join(names) or 'none'}); fix spec.instances[].disks",
                    )
                )
                return None
            attached = [(n, z) for n, z in attached if n in wanted]
        if not attached:
            errors.append(Skipped(instance=instance.name, zone=zone, reason="no persistent zonal disk attached"))
            return None
        return Target(
            project=spec.project,
            zone=zone,
            instance=instance.name,
            tier=tier,
            run=run,
            status=instance.status,
            disks=[
                DiskTarget(name=n, zone=z, snapshot=snapshot_name(policy.dag_id, run_id, spec.project, z, n))
                for n, z in attached
            ],
        )

    if spec.instances is not None:
        for ref in spec.instances:
            instance = hook.find_instance(spec.project, ref.zone, ref.name)
            if instance is None:
                errors.append(Skipped(instance=ref.name, zone=ref.zone, reason="instance not found"))
                continue
            found = target(instance, ref.zone, ref.tier, ref.disks)
            if found:
                groups[ref.tier or NO_TIER].append(found)
    elif spec.selector is not None:
        selector = spec.selector
        for instance in hook.list_instances(spec.project, selector.zones, dict(selector.match_labels)):
            zone = instance.zone.rstrip("/").rsplit("/", 1)[-1]
            tier: str | None = None
            if selector.tier_label is not None:
                tier = instance.labels.get(selector.tier_label)
                if tier not in groups:
                    skipped.append(
                        Skipped(
                            instance=instance.name,
                            zone=zone,
                            reason=f"label {selector.tier_label}={tier!r} is not one of the tiers {spec.tiers}",
                        )
                    )
                    continue
            found = target(instance, zone, tier, None)
            if found:
                groups[tier or NO_TIER].append(found)
    for members in groups.values():
        members.sort(key=lambda t: (t["zone"], t["instance"]))
    return Resolution(groups=groups, skipped=skipped, errors=errors)
