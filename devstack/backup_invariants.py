"""What vmbackup must never do to Compute Engine, checked on the simulator while tests and benchmarks drive it.

The simulator (devstack/gce_simulator) knows Compute Engine only; these rules read this product's own labels
(vmbackup.model.labels), so they live here and reach the simulator as an observer (gce_simulator/observers.py).
``install()`` makes every simulator created afterwards carry them; ``devstack/__init__.py`` calls it, so importing
``devstack.gce_simulator`` is enough. Each broken rule is one entry of ``ComputeSimulator.violations``:

- ``snapshot-of-running-disk``: a consistency=stop point in time (a standard snapshot taken from the disk, or an
  instant snapshot) while a VM using the disk is not TERMINATED;
- ``duplicate-snapshot`` / ``duplicate-instant-snapshot``: a second one of the same disk with the same run label;
- ``start-during-snapshot-creating``: a VM started while a consistency=stop snapshot of its disk is still CREATING.

It also tells the simulator's profile the environment variable the Compute hook reads its quota window from
(``Profile.quota_window_env``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from devstack.gce_simulator import observers, profile
from vmbackup.model import labels as vm_labels
from vmbackup.settings import QUOTA_WINDOW_ENV

if TYPE_CHECKING:
    from devstack.gce_simulator.observers import WorldView
    from devstack.gce_simulator.resources import Disk, Instance, InstantSnapshot, Snapshot

STOP = vm_labels.consistency_value("stop")


class BackupInvariants:
    """An observer (gce_simulator/observers.py) recording vmbackup's broken rules as violations."""

    def snapshot_requested(self, world: WorldView, snapshot: Snapshot) -> None:
        if snapshot.source_instant_snapshot is None:  # from an instant snapshot, the point in time is fixed already
            _check_quiesced(world, snapshot.source_disk, snapshot.name, snapshot.labels)
        run = snapshot.labels.get(vm_labels.RUN)
        if not run:
            return
        for other in world.snapshots.values():
            if (
                other.source_disk is snapshot.source_disk
                and other.labels.get(vm_labels.RUN) == run
                and other.status not in ("FAILED", "DELETING")
            ):
                world.violate(
                    "duplicate-snapshot",
                    f"snapshot {snapshot.name} duplicates {other.name}: same disk {snapshot.source_disk.name} and "
                    f"{vm_labels.RUN}={run}",
                    snapshot=snapshot.name,
                    duplicate_of=other.name,
                    disk=snapshot.source_disk.name,
                    run=run,
                )

    def instant_snapshot_requested(self, world: WorldView, instant: InstantSnapshot) -> None:
        _check_quiesced(world, instant.source_disk, instant.name, instant.labels)
        run = instant.labels.get(vm_labels.RUN)
        if not run:
            return
        for other in world.instant_snapshots.values():
            if other.source_disk is instant.source_disk and other.labels.get(vm_labels.RUN) == run:
                world.violate(
                    "duplicate-instant-snapshot",
                    f"instant snapshot {instant.name} duplicates {other.name}: same disk {instant.source_disk.name} "
                    f"and {vm_labels.RUN}={run}",
                    snapshot=instant.name,
                    duplicate_of=other.name,
                    disk=instant.source_disk.name,
                    run=run,
                )

    def instance_starting(self, world: WorldView, instance: Instance) -> None:
        """Starting a VM whose disk is still in a consistency=stop snapshot's CREATING phase breaks consistency."""
        links = {d["source"] for d in instance.disks}
        points: list[Snapshot | InstantSnapshot] = [
            *(s for s in world.snapshots.values() if s.source_instant_snapshot is None),
            *world.instant_snapshots.values(),
        ]
        for point in points:
            if (
                point.source_disk.self_link in links
                and point.status == "CREATING"
                and point.labels.get(vm_labels.CONSISTENCY) == STOP
            ):
                world.violate(
                    "start-during-snapshot-creating",
                    f"instance {instance.name} started while snapshot {point.name} of its disk "
                    f"{point.source_disk.name} is still CREATING",
                    snapshot=point.name,
                    disk=point.source_disk.name,
                    instance=instance.name,
                )


def _check_quiesced(world: WorldView, disk: Disk, name: str, labels: dict[str, str]) -> None:
    """A consistency=stop point in time (snapshot or instant snapshot) needs every VM of the disk TERMINATED."""
    if labels.get(vm_labels.CONSISTENCY) != STOP:
        return
    for instance in world.instances_using(disk):
        if instance.status != "TERMINATED":
            world.violate(
                "snapshot-of-running-disk",
                f"snapshot {name} of disk {disk.name} while instance {instance.name} is "
                f"{instance.status} (consistency=stop requires TERMINATED)",
                snapshot=name,
                disk=disk.name,
                instance=instance.name,
                instance_status=instance.status,
            )


def install() -> None:
    """Every simulator created from now on checks these rules, and hands DAG runs the hook's quota window."""
    observers.register_default(BackupInvariants)
    if QUOTA_WINDOW_ENV not in profile.QUOTA_WINDOW_ENV_NAMES:
        profile.QUOTA_WINDOW_ENV_NAMES.append(QUOTA_WINDOW_ENV)
