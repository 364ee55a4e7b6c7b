"""instances: seed, list, aggregatedList, get, setLabels, insert (from disks or snapshots), delete.

An insert's network interfaces are checked and kept as networks.py says (subnetwork in the zone's region, an
external IP address only with a ONE_TO_ONE_NAT access config), its GPUs and scheduling as accelerators.py says
(types the zone offers, on a machine type that takes them, ``onHostMaintenance: TERMINATE``).

Power states (stop, start, suspend, resume, preemption) are power.py's, disk attachment and the serial console
devices.py's. REST shapes: compute v1 reference, ``instances.insert`` / ``instances.delete`` /
``instances.setLabels`` / ``instances.aggregatedList``; a stale ``labelFingerprint`` is refused with 412
``conditionNotMet``. Life cycle: PROVISIONING -> STAGING -> RUNNING ("Instance life cycle",
https://cloud.google.com/compute/docs/instances/instance-life-cycle); a stockout fails the insert (power.py).
"""

from __future__ import annotations

import time
from typing import Any

from . import accelerators, devices, machine_types, networks, power, reservations
from .common import already_exists, body_labels, compile_query_filter, fingerprint, parse_ref, required_name
from .disks import ready_snapshot
from .errors import ApiError, stockout_error
from .faults import Fault
from .resources import DEFAULT_SERVICE_ACCOUNT, Disk, Instance
from .state import World


def _seed_disk(world: World, project: str, zone: str, spec: dict[str, Any]) -> Disk:
    """The disk an ``add_instance`` disk spec names, created if missing (lock held)."""
    region = spec.get("region")
    key = (project, region or zone, spec["name"])
    disk = world.disks.get(key)
    if disk is None:
        disk = Disk(
            project,
            region or zone,
            spec["name"],
            size_gb=int(spec.get("size_gb", 10)),
            disk_type=spec.get("disk_type", "pd-balanced"),
            guest_console=devices.DEFAULT_GUEST_CONSOLE if spec["boot"] else "",
            region=region,
            replica_zones=[zone, *(z for z in [spec.get("replica_zone", f"{region}-f")] if z != zone)]
            if region
            else [],
        )
        world.disks[key] = disk
    if disk.users:
        raise ValueError(f"disk {spec['name']} is already attached to {disk.users}")
    return disk


def add_instance(
    world: World,
    project: str,
    zone: str,
    name: str,
    *,
    labels: dict[str, str] | None = None,
    disks: list[Any] | None = None,
    status: str = "RUNNING",
    machine_type: str = "e2-medium",
    tags: list[str] | None = None,
    network: str = "default",
    reservation_affinity: dict[str, Any] | None = None,
) -> Instance:
    """Seed an instance. ``disks``: names (or dicts ``{name, size_gb, boot, device_name, disk_type}``) of disks
    in the same zone, created if missing; the first is the boot disk. Default: one 10 GB boot disk named like
    the instance. A dict with ``region`` (and optionally ``replica_zone``) attaches a regional persistent disk,
    served by regionDisks.get and snapshotted through regionInstantSnapshots or snapshots.insert.
    ``reservation_affinity``: its ``reservationAffinity`` (a RUNNING one consumes a reservation, reservations.py).
    Lock held."""
    if (project, zone, name) in world.instances:
        raise ValueError(f"instance {project}/{zone}/{name} already exists")
    specs: list[dict[str, Any]] = []
    for index, spec in enumerate(disks if disks is not None else [name]):
        entry = {"name": spec} if isinstance(spec, str) else dict(spec)
        entry.setdefault("boot", index == 0)
        specs.append(entry)
    instance = Instance(
        project=project,
        zone=zone,
        name=name,
        status=status,
        labels=dict(labels or {}),
        disks=[],
        machine_type=machine_type,
        network=network,
        tags=list(tags or []),
        service_accounts=[
            {
                "email": DEFAULT_SERVICE_ACCOUNT.format(number=abs(hash(project)) % 10**12),
                "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
            }
        ],
        baseline_status=status,
    )
    for index, spec in enumerate(specs):
        disk = _seed_disk(world, project, zone, spec)
        disk.users.append(instance.self_link)
        boot = bool(spec["boot"]) and not spec.get("region")
        instance.disks.append(devices.attached_disk(disk, index, boot, spec.get("device_name")))
    if reservation_affinity is not None:
        instance.extra["reservationAffinity"] = dict(reservation_affinity)
    if status == "RUNNING":
        instance.last_start = time.time()
        _seed_consumption(world, instance)
    world.instances[(project, zone, name)] = instance
    world.zones.setdefault(project, set()).add(zone)
    return instance


def _seed_consumption(world: World, instance: Instance) -> None:
    """A RUNNING seed holds its reservation; one whose specific reservation is full cannot be seeded."""
    reservation, refused = reservations.pick(world, instance)
    if refused is not None:
        raise ValueError(refused[2])
    reservations.consume(instance, reservation)


def seed_classic(world: World, project: str) -> None:
    """The tutorial's VM plus a few labelled VMs for selector policies."""
    with world.cond:
        shop = {"app": "shop"}
        add_instance(
            world, project, "us-central1-c", "wordpress-1-vm", labels={"app": "wordpress"}, tags=["http-server"]
        )
        add_instance(world, project, "us-central1-a", "web-1", labels={**shop, "tier": "web"}, tags=["http-server"])
        add_instance(world, project, "us-central1-b", "web-2", labels={**shop, "tier": "web"}, tags=["http-server"])
        add_instance(world, project, "us-central1-a", "app-1", labels={**shop, "tier": "app"})
        add_instance(
            world,
            project,
            "us-central1-a",
            "db-1",
            labels={**shop, "tier": "db"},
            disks=[{"name": "db-1", "size_gb": 20}, {"name": "db-1-data", "size_gb": 100, "device_name": "data"}],
            machine_type="n2-standard-4",
        )


def list_instances(world: World, project: str, zone: str, filter_text: str | None) -> list[dict[str, Any]]:
    predicate = compile_query_filter(filter_text)
    with world.cond:
        items = [i.to_json() for (p, z, _), i in sorted(world.instances.items()) if p == project and z == zone]
    return [item for item in items if predicate(item)]


def aggregated_instances(world: World, project: str, filter_text: str | None) -> dict[str, list[dict[str, Any]]]:
    predicate = compile_query_filter(filter_text)
    with world.cond:
        zones = sorted(world.zones.get(project, set()))
        everything = [(z, i.to_json()) for (p, z, _), i in sorted(world.instances.items()) if p == project]
    scoped: dict[str, list[dict[str, Any]]] = {f"zones/{z}": [] for z in zones}
    for zone, item in everything:
        if predicate(item):
            scoped[f"zones/{zone}"].append(item)
    return scoped


def set_instance_labels(
    world: World, project: str, zone: str, name: str, body: dict[str, Any], faults: list[Fault]
) -> dict[str, Any]:
    with world.cond:
        instance = world._instance(project, zone, name)
        if body.get("labelFingerprint") != fingerprint(instance.labels):
            raise ApiError(412, "conditionNotMet", "Labels fingerprint either invalid or resource labels have changed")
        new_labels = body_labels(body)
        op = world._new_operation(project, zone, "setLabels", instance.self_link, instance.id, None, faults)

        def run() -> None:
            if world._fail_with_fault(op):
                return
            world._after(world.profile.set_labels_seconds + op.extra_seconds, lambda: world._finish(op))

        if op.fault is None:
            instance.labels = new_labels  # visible at once; the fingerprint changes with it
        world._run_serialized(op, run)
        return op.to_json()


def _disk_from_snapshot(world: World, project: str, zone: str, name: str, index: int, spec: dict[str, Any]) -> Disk:
    params = spec["initializeParams"]
    snapshot = ready_snapshot(world, project, params["sourceSnapshot"])
    disk_name = params.get("diskName") or (name if index == 0 else f"{name}-{index}")
    if (project, zone, disk_name) in world.disks:
        raise already_exists(f"projects/{project}/zones/{zone}/disks/{disk_name}")
    return Disk(
        project,
        zone,
        disk_name,
        size_gb=int(params.get("diskSizeGb") or snapshot.source_disk.size_gb),
        source_snapshot=snapshot.self_link,
        source_snapshot_id=snapshot.id,
        guest_console=snapshot.guest_console,
    )


def _insert_disks(
    world: World, project: str, zone: str, name: str, body: dict[str, Any]
) -> tuple[list[tuple[Disk, dict[str, Any]]], list[Disk]]:
    """The disks an ``instances.insert`` attaches (existing ones checked, new ones from snapshots not yet added)."""
    attach: list[tuple[Disk, dict[str, Any]]] = []
    new_disks: list[Disk] = []
    for index, spec in enumerate(body.get("disks") or []):
        if spec.get("source"):
            ref = parse_ref(spec["source"])
            disk = world._disk(ref["project"] or project, ref["zone"] or zone, str(ref["name"]))
            devices.check_shareable(world, disk, str(spec.get("mode") or "READ_WRITE"))
            if disk.status != "READY":
                raise ApiError(400, "resourceNotReady", f"The resource '{disk.path}' is not ready")
        elif spec.get("initializeParams", {}).get("sourceSnapshot"):
            disk = _disk_from_snapshot(world, project, zone, name, index, spec)
            new_disks.append(disk)
        else:
            raise ApiError(400, "invalid", "Each disk needs 'source' or 'initializeParams.sourceSnapshot'")
        attach.append((disk, spec))
    if not attach:
        raise ApiError(400, "invalid", "At least one disk should be attached to the instance")
    return attach, new_disks


def _inserted(world: World, project: str, zone: str, body: dict[str, Any]) -> tuple[Instance, list[Disk]]:
    """The PROVISIONING instance an ``instances.insert`` asks for, with its disks attached (lock held)."""
    name = required_name(body)
    if (project, zone, name) in world.instances:
        raise already_exists(f"projects/{project}/zones/{zone}/instances/{name}")
    machine_types.check_insert(world, zone, body)
    accelerators.check_insert(world, project, zone, body)
    nics = networks.network_interfaces(project, zone, body, seed=sum(map(ord, name)))
    attach, new_disks = _insert_disks(world, project, zone, name, body)
    reservations.check_affinity(world, project, zone, body)
    labels = body_labels(body)
    network = "default"
    for nic in body.get("networkInterfaces") or []:
        if nic.get("network"):
            network = str(nic["network"]).rsplit("/", 1)[-1]
    instance = Instance(
        project=project,
        zone=zone,
        name=name,
        status="PROVISIONING",
        labels=labels,
        disks=[],
        machine_type=str(body.get("machineType", "e2-medium")).rsplit("/", 1)[-1],
        network=network,
        tags=list((body.get("tags") or {}).get("items") or []),
        service_accounts=list(body.get("serviceAccounts") or []),
        baseline_status="RUNNING",
    )
    if body.get("reservationAffinity"):
        instance.extra["reservationAffinity"] = dict(body["reservationAffinity"])
    if nics:
        instance.extra["networkInterfaces"] = nics
    accelerators.keep(instance, body)
    for disk in new_disks:
        world.disks[(project, zone, disk.name)] = disk
    for index, (disk, spec) in enumerate(attach):
        disk.users.append(instance.self_link)
        boot = bool(spec.get("boot", index == 0))
        instance.disks.append(devices.attached_disk(disk, index, boot, spec.get("deviceName")))
        instance.disks[-1]["mode"] = str(spec.get("mode") or "READ_WRITE")
    world.instances[(project, zone, name)] = instance
    world.zones.setdefault(project, set()).add(zone)
    return instance, new_disks


def insert_instance(world: World, project: str, zone: str, body: dict[str, Any], faults: list[Fault]) -> dict[str, Any]:
    with world.cond:
        instance, new_disks = _inserted(world, project, zone, body)
        op = world._new_operation(project, zone, "insert", instance.self_link, instance.id, instance.self_link, faults)

        def body_fn() -> None:
            reservation, refused = reservations.pick(world, instance)
            stocked_out = reservation is None and power.in_stockout(world, zone, instance.machine_type)
            if op.fault is not None or refused is not None or stocked_out:
                remove_instance(world, instance)
                for disk in new_disks:
                    world.disks.pop((project, zone, disk.name), None)
                if not world._fail_with_fault(op):
                    world._finish(op, refused or stockout_error(project, zone))
                return
            reservations.consume(instance, reservation)

            def staging() -> None:
                instance.status = "STAGING"

                def running() -> None:
                    instance.status = "RUNNING"
                    instance.last_start = time.time()
                    devices.booted(world, instance)
                    world._finish(op)

                world._after(world.profile.instance_staging_seconds, running)

            world._after(world.profile.instance_provisioning_seconds + op.extra_seconds, staging)

        world._run_serialized(op, body_fn)
        return op.to_json()


def delete_instance(world: World, project: str, zone: str, name: str, faults: list[Fault]) -> dict[str, Any]:
    """STOPPING, then gone; its disks are detached and those with ``autoDelete`` deleted."""
    with world.cond:
        instance = world._instance(project, zone, name)
        op = world._new_operation(project, zone, "delete", instance.self_link, instance.id, instance.self_link, faults)

        def body() -> None:
            if world._fail_with_fault(op):
                return
            instance.status = "STOPPING"

            def gone() -> None:
                remove_instance(world, instance)
                for attached in instance.disks:
                    if attached.get("autoDelete"):
                        world.disks.pop((project, zone, str(parse_ref(attached["source"])["name"])), None)
                world._finish(op)

            world._after(world.profile.stop_seconds + op.extra_seconds, gone)

        world._run_serialized(op, body)
        return op.to_json()


def remove_instance(world: World, instance: Instance) -> None:
    """Forget the instance, detach its disks and free its reserved place (lock held)."""
    reservations.release(instance)
    for attached in instance.disks:
        ref = parse_ref(attached["source"])
        disk = world.disks.get((instance.project, ref["region"] or instance.zone, str(ref["name"])))
        if disk is not None and instance.self_link in disk.users:
            disk.users.remove(instance.self_link)
    world.instances.pop((instance.project, instance.zone, instance.name), None)
