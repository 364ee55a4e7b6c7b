"""Power states of instances: stop (graceful shutdown, Local SSDs), start (stockouts), suspend, resume, preemption.

Sources (the rest of the life cycle: "Instance life cycle", https://cloud.google.com/compute/docs/instances/
instance-life-cycle; the client's request messages are ``google.cloud.compute_v1.types``):

- Graceful shutdown: ``scheduling.gracefulShutdown`` {``enabled``, ``maxDuration``}: "The time allotted for the
  instance to gracefully shut down. If the graceful shutdown isn't complete after this time, then the instance
  transitions to the STOPPING state" (SchedulingGracefulShutdown reference); the instance is ``PENDING_STOP``
  meanwhile (ResourceStatusShutdownDetails: "Only applicable when stop_state=PENDING_STOP"). Default 10 minutes
  when enabled, at most 1 hour ("Graceful shutdown overview",
  https://cloud.google.com/compute/docs/instances/graceful-shutdown-overview). ``StopInstanceRequest``:
  "no_graceful_shutdown: If set to true, Graceful Shutdown is skipped". The simulator assumes the guest uses the
  whole ``maxDuration`` (the worst case), scaled by ``Profile.api_duration_scale`` and ``time_scale``.
- Local SSD: ``StopInstanceRequest.discard_local_ssd``: "This property is required if the instance has any attached
  Local SSD disks. If false, Local SSD data will be preserved when the instance is suspended. If true, the contents
  of any attached Local SSD disks will be discarded". Without it Compute Engine answers 400 ``badRequest`` "VM has a
  Local SSD attached but an undefined value for `discard-local-ssd`. If using gcloud, please add
  `--discard-local-ssd=false` or `--discard-local-ssd=true` to your command." (reported verbatim:
  skypilot-org/skypilot#2586, ansible-collections/google.cloud#686). An attached Local SSD is ``type: SCRATCH``,
  ``interface: NVME`` without ``source`` (AttachedDisk reference).
- Stockouts: ``ZONE_RESOURCE_POOL_EXHAUSTED`` "The zone 'projects/PROJECT_ID/zones/ZONE' does not have enough
  resources available to fulfill the request. Try a different zone, or try again later." ("Troubleshoot resource
  availability errors", https://cloud.google.com/compute/docs/resource-error), for requests "to create, restart, or
  update Compute Engine instances": start, resume and insert end DONE with that error and the VM stays TERMINATED.
  NOT VERIFIED: ``httpErrorStatusCode`` 503. A stockout is per zone, or per machine type in a zone ("A
  VM_TYPE_AND_SIZE VM instance ... is currently unavailable in the ZONE zone", same page). It does not fail a
  power-on that consumes a reservation with room (reservations.py).
- "stop on a TERMINATED VM returns without error" (``gcloud compute instances stop``); a SUSPENDED VM needs
  ``resume`` (instance life cycle: SUSPENDING -> SUSPENDED, resume -> RUNNING). NOT VERIFIED: the wording of the 400
  for ``start`` on a SUSPENDED VM and ``resume`` on a VM that is not suspended.
- Spot VMs (``scheduling.provisioningModel: SPOT``) can be preempted at any time ("Spot VMs",
  https://cloud.google.com/compute/docs/instances/spot); preemption is a system operation of type
  ``compute.instances.preempted`` after which the VM is TERMINATED.
"""

from __future__ import annotations

import time
from typing import Any

from . import devices, reservations
from .errors import ApiError, resource_not_ready, stockout_error
from .faults import Fault
from .resources import Instance, Operation
from .state import World

DEFAULT_GRACEFUL_SECONDS = 600.0
MAX_GRACEFUL_SECONDS = 3600.0
LOCAL_SSD_MESSAGE = (
    "VM has a Local SSD attached but an undefined value for `discard-local-ssd`. If using gcloud, please add "
    "`--discard-local-ssd=false` or `--discard-local-ssd=true` to your command."
)


def configure(
    instance: Instance,
    *,
    graceful_shutdown_seconds: float | None = None,
    local_ssds: int = 0,
    guest_flush_supported: bool = True,
    provisioning_model: str = "STANDARD",
) -> None:
    """Seed the stricter features of an instance (lock held): graceful shutdown, Local SSDs, guest flush, Spot."""
    set_provisioning_model(instance, provisioning_model)
    if graceful_shutdown_seconds is not None:
        set_graceful_shutdown(instance, graceful_shutdown_seconds)
    set_local_ssds(instance, local_ssds)
    instance.guest_flush_supported = guest_flush_supported


def scheduling_of(instance: Instance) -> dict[str, Any]:
    """The instance's ``scheduling`` (Compute Engine's defaults for a standard VM until something sets a field)."""
    default = {"onHostMaintenance": "MIGRATE", "automaticRestart": True, "preemptible": False}
    scheduling: dict[str, Any] = instance.extra.setdefault("scheduling", default)
    return scheduling


def set_provisioning_model(instance: Instance, model: str) -> None:
    scheduling = scheduling_of(instance)
    scheduling["provisioningModel"] = model
    if model == "SPOT":
        scheduling.update(onHostMaintenance="TERMINATE", automaticRestart=False, instanceTerminationAction="STOP")


def set_graceful_shutdown(instance: Instance, seconds: float) -> None:
    """Enabled, ``maxDuration`` = ``seconds`` (0: the 10-minute default), at most 1 hour."""
    duration = min(float(seconds or DEFAULT_GRACEFUL_SECONDS), MAX_GRACEFUL_SECONDS)
    scheduling_of(instance)["gracefulShutdown"] = {"enabled": True, "maxDuration": {"seconds": str(int(duration))}}


def set_local_ssds(instance: Instance, count: int) -> None:
    instance.local_ssds = [
        {
            "kind": "compute#attachedDisk",
            "type": "SCRATCH",
            "mode": "READ_WRITE",
            "deviceName": f"local-ssd-{index}",
            "index": len(instance.disks) + index,
            "boot": False,
            "autoDelete": True,
            "interface": "NVME",
            "diskSizeGb": "375",
        }
        for index in range(count)
    ]
    if count:
        scheduling_of(instance)["onHostMaintenance"] = "TERMINATE"


def graceful_seconds(instance: Instance) -> float:
    graceful = instance.extra.get("scheduling", {}).get("gracefulShutdown") or {}
    if not graceful.get("enabled"):
        return 0.0
    return float((graceful.get("maxDuration") or {}).get("seconds") or DEFAULT_GRACEFUL_SECONDS)


def _check_local_ssd(instance: Instance, discard_local_ssd: bool | None) -> None:
    if instance.local_ssds and discard_local_ssd is None:
        raise ApiError(400, "badRequest", LOCAL_SSD_MESSAGE)


def _discard(instance: Instance, discard_local_ssd: bool | None) -> None:
    if discard_local_ssd:
        for ssd in instance.local_ssds:
            ssd["simulatorDataDiscarded"] = True  # simulator-side mark: the SSD's data is gone


def stop_instance(
    world: World,
    project: str,
    zone: str,
    name: str,
    faults: list[Fault],
    *,
    discard_local_ssd: bool | None = None,
    no_graceful_shutdown: bool = False,
) -> dict[str, Any]:
    """RUNNING -> (PENDING_STOP for the graceful maxDuration) -> STOPPING -> TERMINATED; TERMINATED: a DONE no-op."""
    with world.cond:
        instance = world._instance(project, zone, name)
        _check_local_ssd(instance, discard_local_ssd)
        op = world._new_operation(project, zone, "stop", instance.self_link, instance.id, instance.self_link, faults)
        grace = 0.0 if no_graceful_shutdown else graceful_seconds(instance) * world.profile.api_duration_scale

        def stopped() -> None:
            instance.status = "TERMINATED"
            instance.last_stop = time.time()
            reservations.release(instance)
            _discard(instance, discard_local_ssd)
            world._finish(op)

        def stopping() -> None:
            instance.status = "STOPPING"
            op.progress = 50
            world._after(world.profile.stop_seconds + op.extra_seconds, stopped)

        def body() -> None:
            if world._fail_with_fault(op):
                return
            if instance.status in ("TERMINATED", "STOPPED"):
                world._finish(op)  # already stopped: a DONE no-op, as in Compute Engine
                return
            if grace > 0 and instance.status == "RUNNING":
                instance.status = "PENDING_STOP"
                op.progress = 10
                world._after(grace, stopping)
                return
            stopping()

        world._run_serialized(op, body)
        return op.to_json()


def in_stockout(world: World, zone: str, machine_type: str | None = None) -> bool:
    """The zone has no capacity (for any machine type, or for ``machine_type``)."""
    now = time.monotonic()
    keys = [zone, f"{zone}/{machine_type}"] if machine_type else [zone]
    return any(now < world.stockouts.get(key, 0.0) for key in keys)


def set_stockout(world: World, zone: str, seconds: float, machine_type: str | None = None) -> float:
    """The zone has no capacity (for ``machine_type`` only, if given) for ``seconds`` of Compute Engine time (scaled
    like API-given durations). Per machine type: "A VM_TYPE_AND_SIZE VM instance ... is currently unavailable in
    the ZONE zone" ("Troubleshoot resource availability errors"); the simulator answers it with the zone's error."""
    with world.cond:
        length = world.profile.scaled(seconds * world.profile.api_duration_scale)
        world.stockouts[f"{zone}/{machine_type}" if machine_type else zone] = time.monotonic() + length
        return length


def _power_on(world: World, op: Operation, instance: Instance, from_statuses: tuple[str, ...]) -> None:
    """STAGING -> RUNNING unless the zone is stocked out (lock held; the op's first RUNNING step)."""
    if world._fail_with_fault(op):
        return
    if instance.status == "RUNNING":
        world._finish(op)  # already running: a DONE no-op
        return
    if instance.status not in from_statuses:
        world._finish(op, (400, "INVALID_USAGE", f"Instance '{instance.name}' is {instance.status}."))
        return
    reservation, refused = reservations.pick(world, instance)
    if refused is not None:  # a SPECIFIC_RESERVATION VM whose reservation is full (reservations.py)
        world._finish(op, refused)
        return
    if reservation is None and in_stockout(world, instance.zone, instance.machine_type):  # reserved: held for us
        world._finish(op, stockout_error(instance.project, instance.zone))
        return
    try:
        devices.check_bootable(instance)
    except ApiError as exc:
        world._finish(op, (exc.code, exc.reason, exc.message))
        return
    world.observe_start(instance)
    reservations.consume(instance, reservation)
    instance.status = "STAGING"
    op.progress = 10

    def running() -> None:
        instance.status = "RUNNING"
        instance.last_start = time.time()
        devices.booted(world, instance)
        world._finish(op)

    world._after(world.profile.start_seconds + op.extra_seconds, running)


def start_instance(world: World, project: str, zone: str, name: str, faults: list[Fault]) -> dict[str, Any]:
    with world.cond:
        instance = world._instance(project, zone, name)
        if instance.status in ("SUSPENDED", "SUSPENDING"):
            raise ApiError(
                400,
                "badRequest",
                f"Instance '{instance.name}' is suspended; use instances.resume to resume it.",
            )
        op = world._new_operation(project, zone, "start", instance.self_link, instance.id, instance.self_link, faults)
        world._run_serialized(op, lambda: _power_on(world, op, instance, ("TERMINATED", "STOPPED")))
        return op.to_json()


def resume_instance(world: World, project: str, zone: str, name: str, faults: list[Fault]) -> dict[str, Any]:
    """SUSPENDED -> STAGING -> RUNNING (a stockout fails it like a start)."""
    with world.cond:
        instance = world._instance(project, zone, name)
        if instance.status not in ("SUSPENDED", "RUNNING"):
            raise ApiError(400, "badRequest", f"Instance '{instance.name}' is {instance.status}, not SUSPENDED.")
        op = world._new_operation(project, zone, "resume", instance.self_link, instance.id, instance.self_link, faults)
        world._run_serialized(op, lambda: _power_on(world, op, instance, ("SUSPENDED",)))
        return op.to_json()


def suspend_instance(
    world: World,
    project: str,
    zone: str,
    name: str,
    faults: list[Fault],
    *,
    discard_local_ssd: bool | None = None,
) -> dict[str, Any]:
    """RUNNING -> SUSPENDING -> SUSPENDED (``stop_seconds``); SUSPENDED: a DONE no-op."""
    with world.cond:
        instance = world._instance(project, zone, name)
        _check_local_ssd(instance, discard_local_ssd)
        if instance.status not in ("RUNNING", "SUSPENDED"):
            raise resource_not_ready(instance.path)
        op = world._new_operation(project, zone, "suspend", instance.self_link, instance.id, instance.self_link, faults)

        def suspended() -> None:
            instance.status = "SUSPENDED"
            reservations.release(instance)
            _discard(instance, discard_local_ssd)
            world._finish(op)

        def body() -> None:
            if world._fail_with_fault(op):
                return
            if instance.status == "SUSPENDED":
                world._finish(op)
                return
            instance.status = "SUSPENDING"
            world._after(world.profile.stop_seconds + op.extra_seconds, suspended)

        world._run_serialized(op, body)
        return op.to_json()


def preempt(world: World, project: str, zone: str, name: str) -> dict[str, Any]:
    """Compute Engine reclaims a RUNNING Spot VM: a ``compute.instances.preempted`` operation, then TERMINATED."""
    with world.cond:
        instance = world._instance(project, zone, name)
        if instance.extra.get("scheduling", {}).get("provisioningModel") != "SPOT":
            raise ValueError(f"instance {name} is not a Spot VM (provisioningModel SPOT)")
        if instance.status != "RUNNING":
            raise ValueError(f"instance {name} is {instance.status}, only a RUNNING Spot VM can be preempted")
        op = world._new_operation(
            project, zone, "compute.instances.preempted", instance.self_link, instance.id, None, []
        )
        op.status, op.start_time = "RUNNING", time.time()
        instance.status = "STOPPING"

        def terminated() -> None:
            instance.status = "TERMINATED"
            instance.last_stop = time.time()
            reservations.release(instance)
            world._finish(op)

        world._after(world.profile.stop_seconds, terminated)
        return op.to_json()
