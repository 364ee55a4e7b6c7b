"""Disk attachment and the serial console of simulated instances: what in-place restores and restore drills use.

REST shapes (compute v1 reference, ``instances.attachDisk`` / ``instances.detachDisk`` /
``instances.getSerialPortOutput``):

- ``POST .../instances/{instance}/attachDisk`` with an ``AttachedDisk`` body (``source``, ``deviceName``,
  ``boot``, ``autoDelete``, ``mode``) and ``POST .../instances/{instance}/detachDisk?deviceName=...`` answer
  zonal Operations (``operationType`` attachDisk / detachDisk). "To detach the boot disk, the instance must be in
  TERMINATED state" is Compute Engine's own 400 ``invalidResourceUsage`` message (quoted in
  github.com/litmuschaos/chaos-charts/issues/562); attaching a boot disk is refused the same way. The wording of
  the other refusals (no disk with that device name, a second boot disk, a device name in use, starting without a
  boot disk) is NOT VERIFIED against Compute Engine; their HTTP status and reason follow its error catalog.
- Sharing: "Multiple virtual machines can use a disk in read-only mode at a time ... Only one virtual machine at a
  time can be attached to a disk in read-write mode" (compute v1 reference, ``AttachedDisk.mode``). So a disk in
  use anywhere cannot be attached READ_WRITE (400 ``resourceInUseByAnotherResource``, the reason Compute Engine
  gives), and a disk attached READ_WRITE somewhere cannot be attached at all; READ_ONLY next to READ_ONLY is
  allowed. ``instances.insert`` applies the same rule (``check_shareable``).
- ``POST .../zones/{zone}/disks/{disk}/setLabels`` with a ``ZoneSetLabelsRequest`` (``labels``,
  ``labelFingerprint``) answers a zonal Operation (``operationType`` setLabels); a stale fingerprint is refused
  with 412 ``conditionNotMet``, as ``instances.setLabels`` is.
- ``GET .../instances/{instance}/serialPort?port=N&start=S`` answers ``compute#serialPortOutput`` with
  ``contents``, ``start``, ``next`` and ``selfLink``. "If the amount of serial console output exceeds the size of
  the buffer (1 MB), the oldest output is discarded ... the start position is adjusted to the oldest output still
  available ... a negative start position ... translates to the most recent number of bytes" (the
  GetSerialPortOutputInstanceRequest reference). Ports 1-4. Output is kept across stop/start (NOT VERIFIED).

The guest: a disk may carry the console text its operating system prints when booted (``guest_console``; a
snapshot captures it and a disk made from the snapshot has it again). An instance that reaches RUNNING writes its
boot disk's text to port 1 ``guest_boot_seconds`` later, ``$HOSTNAME`` replaced by the instance's name. Tests set
it (or write more output) through the control plane, e.g. ``SimulatorControl.set_guest_console``.
"""

from __future__ import annotations

from typing import Any

from .common import body_labels, fingerprint, parse_ref
from .errors import ApiError
from .faults import Fault
from .resources import Disk, Instance
from .state import World

SERIAL_BUFFER_BYTES = 1024 * 1024
SERIAL_PORTS = range(1, 5)
DEFAULT_GUEST_CONSOLE = (
    "SeaBIOS (version 1.8.2-google)\r\n"
    "Booting from Hard Disk 0...\r\n"
    "[    0.000000] Linux version 6.1.0-28-cloud-amd64\r\n"
    "[  OK  ] Reached target multi-user.target - Multi-User System.\r\n"
    "\r\n"
    "Debian GNU/Linux 12 $HOSTNAME ttyS0\r\n"
    "\r\n"
    "$HOSTNAME login: "
)


def attached_disk(disk: Disk, index: int, boot: bool, device_name: str | None) -> dict[str, Any]:
    """An instance's ``disks[]`` entry (AttachedDisk) for a persistent disk."""
    return {
        "kind": "compute#attachedDisk",
        "type": "PERSISTENT",
        "mode": "READ_WRITE",
        "source": disk.self_link,
        "deviceName": device_name or (disk.name if not boot else "persistent-disk-0"),
        "index": index,
        "boot": boot,
        "autoDelete": boot,
        "interface": "SCSI",
        "diskSizeGb": str(disk.size_gb),
    }


def _usage_error(message: str) -> ApiError:
    return ApiError(400, "invalidResourceUsage", f"Invalid resource usage: '{message}'.")


def attach_disk(
    world: World, project: str, zone: str, name: str, body: dict[str, Any], faults: list[Fault]
) -> dict[str, Any]:
    with world.cond:
        instance = world._instance(project, zone, name)
        source = body.get("source")
        if not source:
            raise ApiError(400, "required", "Required field 'resource.source' not specified")
        ref = parse_ref(str(source))
        disk = world._disk(ref["project"] or project, ref["zone"] or zone, str(ref["name"]))
        boot = bool(body.get("boot"))
        device_name = str(body.get("deviceName") or disk.name)
        mode = str(body.get("mode") or "READ_WRITE")
        _check_attachable(world, instance, disk, boot, device_name, mode)
        op = world._new_operation(
            project, zone, "attachDisk", instance.self_link, instance.id, instance.self_link, faults
        )

        def run() -> None:
            if world._fail_with_fault(op):
                return

            def attached() -> None:
                try:
                    _check_attachable(world, instance, disk, boot, device_name, mode)
                except ApiError as exc:
                    world._finish(op, (exc.code, exc.reason, exc.message))
                    return
                entry = attached_disk(disk, len(instance.disks), boot, device_name)
                entry["autoDelete"] = bool(body.get("autoDelete", False))
                entry["mode"] = mode
                instance.disks.insert(0, entry) if boot else instance.disks.append(entry)
                _reindex(instance)
                disk.users.append(instance.self_link)
                world._finish(op)

            world._after(world.profile.attach_disk_seconds + op.extra_seconds, attached)

        world._run_serialized(op, run)
        return op.to_json()


def check_shareable(world: World, disk: Disk, mode: str) -> None:
    """READ_WRITE needs the disk unused; READ_ONLY needs every other attachment READ_ONLY too (lock held)."""
    if not disk.users:
        return
    writers = [
        user
        for user in disk.users
        for other in world.instances.values()
        if other.self_link == user
        for entry in other.disks
        if parse_ref(entry["source"])["name"] == disk.name and entry.get("mode", "READ_WRITE") != "READ_ONLY"
    ]
    if mode != "READ_ONLY" or writers:
        raise ApiError(
            400,
            "resourceInUseByAnotherResource",
            f"The disk resource '{disk.path}' is already being used by '{(writers or disk.users)[0]}'",
        )


def _check_attachable(world: World, instance: Instance, disk: Disk, boot: bool, device_name: str, mode: str) -> None:
    if disk.status != "READY":
        raise ApiError(400, "resourceNotReady", f"The resource '{disk.path}' is not ready")
    if instance.self_link in disk.users:
        raise ApiError(
            400,
            "resourceInUseByAnotherResource",
            f"The disk resource '{disk.path}' is already being used by '{instance.self_link}'",
        )
    check_shareable(world, disk, mode)
    if any(d.get("deviceName") == device_name for d in instance.disks):
        raise ApiError(400, "invalid", f"Invalid value for field 'resource.deviceName': '{device_name}'. In use.")
    if boot:
        if instance.status != "TERMINATED":
            raise _usage_error("To attach a boot disk, the instance must be in TERMINATED state")
        if any(d.get("boot") for d in instance.disks):
            raise _usage_error(f"Instance '{instance.name}' already has a boot disk")


def detach_disk(
    world: World, project: str, zone: str, name: str, device_name: str | None, faults: list[Fault]
) -> dict[str, Any]:
    with world.cond:
        instance = world._instance(project, zone, name)
        if not device_name:
            raise ApiError(400, "required", "Required field 'deviceName' not specified")
        entry = _attached(instance, device_name)
        if entry.get("boot") and instance.status != "TERMINATED":
            raise _usage_error("To detach the boot disk, the instance must be in TERMINATED state")
        op = world._new_operation(
            project, zone, "detachDisk", instance.self_link, instance.id, instance.self_link, faults
        )

        def run() -> None:
            if world._fail_with_fault(op):
                return

            def detached() -> None:
                if entry in instance.disks:
                    instance.disks.remove(entry)
                    _reindex(instance)
                ref = parse_ref(entry["source"])
                disk = world.disks.get((project, zone, str(ref["name"])))
                if disk is not None and instance.self_link in disk.users:
                    disk.users.remove(instance.self_link)
                world._finish(op)

            world._after(world.profile.detach_disk_seconds + op.extra_seconds, detached)

        world._run_serialized(op, run)
        return op.to_json()


def _attached(instance: Instance, device_name: str) -> dict[str, Any]:
    for entry in instance.disks:
        if entry.get("deviceName") == device_name:
            return entry
    raise ApiError(
        400, "invalid", f"Invalid value for field 'deviceName': '{device_name}'. No attached disk with that name."
    )


def _reindex(instance: Instance) -> None:
    for index, entry in enumerate(instance.disks):
        entry["index"] = index


def check_bootable(instance: Instance) -> None:
    """instances.start refuses an instance without a boot disk (as Compute Engine does; wording NOT VERIFIED)."""
    if not any(d.get("boot") for d in instance.disks):
        raise _usage_error(f"Instance '{instance.name}' has no boot disk; attach one with boot=true")


def set_disk_labels(
    world: World, project: str, zone: str, name: str, body: dict[str, Any], faults: list[Fault]
) -> dict[str, Any]:
    with world.cond:
        disk = world._disk(project, zone, name)
        if body.get("labelFingerprint") != fingerprint(disk.labels):
            raise ApiError(412, "conditionNotMet", "Labels fingerprint either invalid or resource labels have changed")
        labels = body_labels(body)
        op = world._new_operation(project, zone, "setLabels", disk.self_link, disk.id, None, faults)

        def run() -> None:
            if world._fail_with_fault(op):
                return
            world._after(world.profile.set_labels_seconds + op.extra_seconds, lambda: world._finish(op))

        if op.fault is None:
            disk.labels = labels  # visible at once, as for instances.setLabels
        world._run_serialized(op, run)
        return op.to_json()


# -- the serial console ----------------------------------------------------------------------------------------


def write_serial(world: World, instance: Instance, text: str, port: int = 1) -> None:
    """Append guest output to a port, keeping only the newest SERIAL_BUFFER_BYTES (lock held)."""
    buffer = instance.serial.setdefault(port, bytearray())
    buffer.extend(text.encode())
    overflow = len(buffer) - SERIAL_BUFFER_BYTES
    if overflow > 0:
        del buffer[:overflow]
        instance.serial_discarded[port] = instance.serial_discarded.get(port, 0) + overflow
    world.cond.notify_all()


def booted(world: World, instance: Instance) -> None:
    """The instance is RUNNING: its guest prints the boot disk's console text a little later (lock held)."""
    boot = next((d for d in instance.disks if d.get("boot")), None)
    if boot is None:
        return
    disk = world.disks.get((instance.project, instance.zone, str(parse_ref(boot["source"])["name"])))
    text = disk.guest_console if disk is not None else ""
    if not text:
        return

    def printed() -> None:
        alive = world.instances.get((instance.project, instance.zone, instance.name)) is instance
        if alive and instance.status == "RUNNING":
            write_serial(world, instance, text.replace("$HOSTNAME", instance.name))

    world._after(world.profile.guest_boot_seconds, printed)


def serial_port_output(
    world: World, project: str, zone: str, name: str, port_param: str | None, start_param: str | None
) -> dict[str, Any]:
    try:
        port = int(port_param) if port_param else 1
        start = int(start_param) if start_param else 0
    except ValueError as exc:
        raise ApiError(400, "invalid", f"Invalid value for 'port' or 'start': {exc}") from exc
    if port not in SERIAL_PORTS:
        raise ApiError(400, "invalid", f"Invalid value for field 'port': '{port}'. Must be between 1 and 4.")
    with world.cond:
        instance = world._instance(project, zone, name)
        buffer = bytes(instance.serial.get(port, b""))
        oldest = instance.serial_discarded.get(port, 0)
        end = oldest + len(buffer)
        first = max(end + start, oldest) if start < 0 else max(min(start, end), oldest)
        return {
            "kind": "compute#serialPortOutput",
            "contents": buffer[first - oldest :].decode(errors="replace"),
            "start": str(first),
            "next": str(end),
            "selfLink": f"{instance.self_link}/serialPort?port={port}",
        }


# -- control plane ----------------------------------------------------------------------------------------------


def set_guest_console(world: World, project: str, zone: str, disk_name: str, text: str) -> dict[str, Any]:
    """What the disk's operating system prints when an instance boots from it (tests: a guest that never
    says it is ready, or a guest check's expected line)."""
    with world.cond:
        disk = world._disk(project, zone, disk_name)
        disk.guest_console = text
        return disk.to_json()


def append_serial(world: World, project: str, zone: str, name: str, text: str, port: int = 1) -> dict[str, Any]:
    """Output the guest writes now (tests: a line printed after boot)."""
    if port not in SERIAL_PORTS:
        raise ValueError(f"port must be 1-4, not {port}")
    with world.cond:
        instance = world._instance(project, zone, name)
        write_serial(world, instance, text, port)
        return {"port": port, "bytes": len(instance.serial[port]) + instance.serial_discarded.get(port, 0)}


def wait_for_serial(world: World, project: str, zone: str, name: str, text: str, timeout: float) -> bool:
    """Block until the instance's port 1 output contains ``text``; False on timeout (tests await this)."""
    needle = text.encode()

    def printed() -> bool:
        instance = world.instances.get((project, zone, name))
        return instance is not None and needle in instance.serial.get(1, b"")

    with world.cond:
        return world.cond.wait_for(printed, timeout=timeout)
