"""Named fault presets that tests, the benchmark and ``python -m devstack.gce_simulator --preset NAME`` share.

Each preset is one function ``(world, **params)`` applied to the running simulator (after seeding: presets that
change instances change every instance seeded so far). Select one with ``ComputeSimulator.apply_preset(name,
**params)`` or ``SimulatorControl.apply_preset(name, **params)``; ``PRESETS`` lists them. The behaviour each
preset turns on, and its Google source, is in the module named in its docstring.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from . import power, reservations
from .faults import Fault
from .quotas import RATE_GROUPS
from .state import World

WRITE_GROUPS = ("zonal_write_requests", "regional_write_requests", "global_resource_write_requests", "default")


def rate_quota_403_once(world: World, method: str = "*") -> None:
    """The next matching call answers 403 rateLimitExceeded, domain usageLimits ("Compute Engine rate quotas";
    errors.py)."""
    world.inject(Fault.rate_limited(method, times=1))


def tight_write_quota(world: World, per_minute: int = 3) -> None:
    """Every write quota group allows ``per_minute`` calls per window and project (quotas.py)."""
    with world.cond:
        for group in WRITE_GROUPS:
            world.rate_quotas.overrides[group] = per_minute


def tight_read_quota(world: World, per_minute: int = 10) -> None:
    """Every read, list and operation-read quota group allows ``per_minute`` calls per window (quotas.py)."""
    with world.cond:
        for group in RATE_GROUPS:
            if group not in WRITE_GROUPS:
                world.rate_quotas.overrides[group] = per_minute


def stockout(world: World, minutes: float = 30.0, zone: str | None = None, machine_type: str | None = None) -> None:
    """``zone`` (default: every zone seeded) cannot start, resume or create VMs (of ``machine_type`` only, if given)
    for ``minutes``, unless they consume a reservation ("Troubleshoot resource availability errors"; power.py)."""
    zones = [zone] if zone else sorted({z for zs in world.zones.values() for z in zs})
    for name in zones:
        power.set_stockout(world, name, minutes * 60.0, machine_type)


def reserved_vms(world: World) -> None:
    """Every instance gets a reservation of its own (count 1, its machine type, ``specificReservationRequired``)
    and targets it (SPECIFIC_RESERVATION): it starts through a stockout (reservations.py)."""
    with world.cond:
        for instance in sorted(world.instances.values(), key=lambda i: i.self_link):
            name = f"{instance.name}-reservation"
            reservations.add_reservation(
                world,
                instance.project,
                instance.zone,
                name,
                count=1,
                machine_type=instance.machine_type,
                specific_reservation_required=True,
            )
            instance.extra["reservationAffinity"] = {
                "consumeReservationType": "SPECIFIC_RESERVATION",
                "key": reservations.NAME_KEYS[0],
                "values": [name],
            }
            if instance.status == "RUNNING" and instance.consumed_reservation is None:
                reservations.consume(instance, world.reservations[(instance.project, instance.zone, name)])


def graceful_shutdown(world: World, seconds: float = 600.0) -> None:
    """Every instance has graceful shutdown enabled with ``maxDuration`` = ``seconds`` (power.py)."""
    with world.cond:
        for instance in world.instances.values():
            power.set_graceful_shutdown(instance, seconds)


def local_ssd(world: World, count: int = 1) -> None:
    """Every instance has ``count`` Local SSDs: stop and suspend need ``discardLocalSsd`` (power.py)."""
    with world.cond:
        for instance in world.instances.values():
            power.set_local_ssds(instance, count)


def no_guest_flush(world: World) -> None:
    """No instance's guest agent supports guestFlush snapshots (snapshot_rules.py)."""
    with world.cond:
        for instance in world.instances.values():
            instance.guest_flush_supported = False


def spot_vms(world: World) -> None:
    """Every instance is a Spot VM, which ``preempt`` can reclaim (power.py)."""
    with world.cond:
        for instance in world.instances.values():
            power.set_provisioning_model(instance, "SPOT")


def purged_operations(world: World, retention_seconds: float = 0.05) -> None:
    """DONE operations are purged ``retention_seconds`` (scaled) after they end: get/wait then 404 ("View Compute
    Engine operations", operation retention period; profile.py)."""
    world.set_profile(dataclasses.replace(world.profile, operation_retention_seconds=retention_seconds))


def busy_resources(world: World, extra_seconds: float = 0.5) -> None:
    """Operations on instances and disks take ``extra_seconds`` longer and restored disks stay RESTORING as long, so
    a second call meets 400 resourceNotReady (errors.py)."""
    for method in (
        "instances.stop",
        "instances.start",
        "instances.suspend",
        "instances.resume",
        "disks.createSnapshot",
    ):
        world.inject(Fault.slow(method, extra_seconds, times=None))
    restoring = world.profile.disk_restoring_seconds + extra_seconds
    world.set_profile(dataclasses.replace(world.profile, disk_restoring_seconds=restoring))


PRESETS: dict[str, Callable[..., None]] = {
    fn.__name__: fn
    for fn in (
        rate_quota_403_once,
        tight_write_quota,
        tight_read_quota,
        stockout,
        reserved_vms,
        graceful_shutdown,
        local_ssd,
        no_guest_flush,
        spot_vms,
        purged_operations,
        busy_resources,
    )
}


def apply(world: World, name: str, **params: Any) -> None:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r} ({' | '.join(PRESETS)})")
    PRESETS[name](world, **params)
