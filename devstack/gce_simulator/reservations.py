"""Reservations (zonal, single-project, on-demand) and how instances consume them (issue 23).

Sources (compute v1 reference and Compute Engine guides; quoted):

- The resource: "A reservation ensures that capacity is held in a specific zone even if the reserved VMs are not
  running" (Reservation, compute v1 reference / ``google.cloud.compute_v1.types.Reservation``). REST:
  ``POST https://compute.googleapis.com/compute/v1/projects/{project}/zones/{zone}/reservations`` "Creates a new
  reservation" (https://cloud.google.com/compute/docs/reference/rest/v1/reservations/insert), with ``get``,
  ``list`` and ``delete`` on the same collection. ``specificReservation``: "count: Specifies the number of
  resources that are allocated", "inUseCount: [Output Only] Indicates how many instances are in use",
  ``instanceProperties.machineType`` (AllocationSpecificSKUReservation reference). ``specificReservationRequired``:
  "Indicates whether the reservation can be consumed by VMs with affinity for "any" reservation. If the field is
  set, then only VMs that target the reservation by name can consume from this reservation". ``status``: "CREATING:
  Reservation resources are being allocated. READY: Reservation resources have been allocated, and the reservation
  is ready for use. DELETING: Reservation deletion is in progress" (Reservation.Status reference).
- Consumption: ``reservationAffinity.consumeReservationType`` "ANY_RESERVATION (default), SPECIFIC_RESERVATION, or
  NO_RESERVATION"; ANY: "Consume any allocation available"; NO: "Do not consume from any allocated capacity";
  SPECIFIC: "Must consume from a specific reservation. Must specify key value fields for specifying the
  reservations"; ``key``: "To target a SPECIFIC_RESERVATION by name, specify googleapis.com/reservation-name as the
  key" (the guide's examples use ``compute.googleapis.com/reservation-name``; both are accepted here), ``values``:
  "either a name to a reservation in the same project or "projects/different-project/reservations/some-reservation-
  name"" (ReservationAffinity reference). Matching: instances "that match the reservation's properties" consume it
  ("Consume reservations", https://cloud.google.com/compute/docs/instances/reservations-consume); here the
  properties are the zone and the machine type. "You can't consume a reservation to create ... Spot VMs or
  preemptible instances" (same page).
- A stopped VM frees its place: to shrink a specific reservation below its in-use count, "Stop or suspend the VMs"
  ("Troubleshooting reservation updates", https://cloud.google.com/compute/docs/troubleshooting/troubleshooting-
  reservation-updates); that page's note (read in its Japanese version) adds that stopped or suspended instances no
  longer count toward the reservation's in-use count, and cannot be restarted or resumed until the reservation has
  room again. So ``inUseCount`` counts the instances holding capacity: from STAGING (start, resume, insert) until
  TERMINATED or SUSPENDED (stop, suspend, preemption) or deletion; counting from STAGING rather than RUNNING is an
  ESTIMATE (capacity must be held while the VM is placed).
- ``resourceStatus.reservationConsumptionInfo.consumedReservation``: "[Output Only] The full resource name of the
  reservation that this instance is consuming from" (ResourceStatusReservationConsumptionInfo reference); filled
  while the instance holds capacity. ESTIMATE: its form (``projects/P/zones/Z/reservations/R`` here).
- Stockouts: reserved capacity is held for the project, so a zone stockout (``ZONE_RESOURCE_POOL_EXHAUSTED``,
  power.py) does not fail a start that consumes a reservation with room. "If you can successfully create a VM that
  targets a specific reservation, the VM consumes the specified reservation" ("Troubleshooting reservation
  consumption", https://cloud.google.com/compute/docs/troubleshooting/troubleshooting-reservation-consumption),
  otherwise creating it fails. NOT VERIFIED (no Google page shows it): the error of a SPECIFIC_RESERVATION VM whose
  reservation is full or missing. The simulator ends the operation with code ``RESERVATION_CAPACITY_EXCEEDED``
  (ESTIMATE, HTTP 400 ESTIMATE) and the message "Reservation '...' does not have sufficient capacity for the
  requested resources." (the wording the GCE cluster autoscaler matches, kubernetes/autoscaler#7319).
- Targeting a reservation without ``specificReservationRequired`` by name is refused at insert: "Specified
  reservations [...] can not be targeted as specificReservationRequired is not set" (400 ``invalid``, reported in
  skypilot-org/skypilot#3327).
- ESTIMATE: a new reservation is READY at once (no CREATING phase), and RUNNING instances it matches adopt it
  (SPECIFIC ones naming it, then ANY ones if it is automatically consumed) up to its count. Deleting a reservation
  in use is allowed; its consumers keep running without it.
"""

from __future__ import annotations

from typing import Any

from .common import already_exists, check_name, compile_query_filter, parse_ref, required_name
from .errors import ApiError, not_found
from .faults import Fault
from .resources import Instance, Reservation
from .state import World

NAME_KEYS = ("compute.googleapis.com/reservation-name", "googleapis.com/reservation-name")
CAPACITY_CODE = "RESERVATION_CAPACITY_EXCEEDED"


def affinity(instance: Instance) -> dict[str, Any]:
    """The instance's ``reservationAffinity`` (unset: ANY_RESERVATION, the default)."""
    found: dict[str, Any] = instance.extra.get("reservationAffinity") or {}
    return found


def _kind(instance: Instance) -> str:
    return str(affinity(instance).get("consumeReservationType") or "ANY_RESERVATION")


def _targets(instance: Instance) -> list[tuple[str, str]]:
    """(project, name) of the reservations a SPECIFIC_RESERVATION instance names."""
    targets = []
    for value in affinity(instance).get("values") or []:
        ref = parse_ref(str(value))
        targets.append((ref["project"] or instance.project, str(ref["name"])))
    return targets


def _matches(reservation: Reservation, instance: Instance) -> bool:
    return (
        reservation.status == "READY"
        and reservation.zone == instance.zone
        and reservation.machine_type.rsplit("/", 1)[-1] == instance.machine_type
    )


def _spot(instance: Instance) -> bool:
    return instance.extra.get("scheduling", {}).get("provisioningModel") == "SPOT"


def _capacity_error(instance: Instance, targets: list[tuple[str, str]]) -> tuple[int, str, str]:
    names = ", ".join(f"projects/{p}/zones/{instance.zone}/reservations/{n}" for p, n in targets) or "(none)"
    return (400, CAPACITY_CODE, f"Reservation '{names}' does not have sufficient capacity for the requested resources.")


def pick(world: World, instance: Instance) -> tuple[Reservation | None, tuple[int, str, str] | None]:
    """The reservation a power-on would consume, or the operation error of a SPECIFIC one without room (lock held)."""
    if instance.consumed_reservation is not None:
        return instance.consumed_reservation, None
    kind = _kind(instance)
    if kind == "NO_RESERVATION" or _spot(instance):
        return None, None
    if kind == "SPECIFIC_RESERVATION":
        targets = _targets(instance)
        for project, name in targets:
            found = world.reservations.get((project, instance.zone, name))
            if found is not None and _matches(found, instance) and found.free > 0:
                return found, None
        return None, _capacity_error(instance, targets)
    for (project, _, _), reservation in sorted(world.reservations.items()):
        if (
            project == instance.project
            and not reservation.specific_reservation_required
            and _matches(reservation, instance)
            and reservation.free > 0
        ):
            return reservation, None
    return None, None


def consume(instance: Instance, reservation: Reservation | None) -> None:
    """The instance holds a place in ``reservation`` (None: none) from now on (lock held)."""
    if reservation is not None and instance.consumed_reservation is None:
        reservation.consumers.append(instance.self_link)
        instance.consumed_reservation = reservation


def release(instance: Instance) -> None:
    """The instance gives its reserved place back (stopped, suspended, preempted, deleted; lock held)."""
    reservation = instance.consumed_reservation
    if reservation is not None:
        if instance.self_link in reservation.consumers:
            reservation.consumers.remove(instance.self_link)
        instance.consumed_reservation = None


def check_affinity(world: World, project: str, zone: str, body: dict[str, Any]) -> None:
    """instances.insert: a SPECIFIC_RESERVATION affinity names reservations by the documented key, and only ones
    that require specific targeting (skypilot-org/skypilot#3327)."""
    wanted = body.get("reservationAffinity") or {}
    if wanted.get("consumeReservationType") != "SPECIFIC_RESERVATION":
        return
    field = "resource.reservationAffinity"
    if wanted.get("key") not in NAME_KEYS or not wanted.get("values"):
        raise ApiError(400, "invalid", f"Invalid value for field '{field}': key {NAME_KEYS[0]} and values required")
    for value in wanted["values"]:
        ref = parse_ref(str(value))
        found = world.reservations.get((ref["project"] or project, zone, str(ref["name"])))
        if found is not None and not found.specific_reservation_required:
            raise ApiError(
                400,
                "invalid",
                f"Invalid value for field '{field}'. Specified reservations [{found.path}] can not be targeted as "
                "specificReservationRequired is not set",
            )


def _adopt(world: World, reservation: Reservation) -> None:
    """RUNNING instances the new reservation matches consume it, SPECIFIC ones first (ESTIMATE; lock held)."""
    candidates = [i for i in world.instances.values() if i.status == "RUNNING" and i.consumed_reservation is None]
    specific = [i for i in candidates if (reservation.project, reservation.name) in _targets(i)]
    automatic = (
        [] if reservation.specific_reservation_required else [i for i in candidates if _kind(i) == "ANY_RESERVATION"]
    )
    for instance in [*specific, *automatic]:
        if reservation.free > 0 and _matches(reservation, instance) and not _spot(instance):
            consume(instance, reservation)


def _new_reservation(world: World, project: str, zone: str, body: dict[str, Any]) -> Reservation:
    name = required_name(body)
    check_name(name)
    if (project, zone, name) in world.reservations:
        raise already_exists(f"projects/{project}/zones/{zone}/reservations/{name}")
    specific = body.get("specificReservation") or {}
    machine_type = str((specific.get("instanceProperties") or {}).get("machineType") or "")
    if not machine_type or int(specific.get("count") or 0) < 1:
        raise ApiError(
            400,
            "invalid",
            "Invalid value for field 'resource.specificReservation': a count of at least 1 and "
            "instanceProperties.machineType are required",
        )
    return Reservation(
        project,
        zone,
        name,
        count=int(specific["count"]),
        machine_type=machine_type.rsplit("/", 1)[-1],
        specific_reservation_required=bool(body.get("specificReservationRequired")),
        description=str(body.get("description") or ""),
    )


def add_reservation(
    world: World,
    project: str,
    zone: str,
    name: str,
    *,
    count: int = 1,
    machine_type: str = "e2-medium",
    specific_reservation_required: bool = False,
) -> dict[str, Any]:
    """Seed a READY reservation (RUNNING instances it matches adopt it)."""
    body = {
        "name": name,
        "specificReservation": {"count": count, "instanceProperties": {"machineType": machine_type}},
        "specificReservationRequired": specific_reservation_required,
    }
    with world.cond:
        reservation = _new_reservation(world, project, zone, body)
        world.reservations[(project, zone, name)] = reservation
        world.zones.setdefault(project, set()).add(zone)
        _adopt(world, reservation)
        return reservation.to_json()


def insert(world: World, project: str, zone: str, body: dict[str, Any], faults: list[Fault]) -> dict[str, Any]:
    """reservations.insert: a zonal operation; the reservation is READY when it is DONE."""
    with world.cond:
        reservation = _new_reservation(world, project, zone, body)
        reservation.status = "CREATING"
        world.reservations[(project, zone, reservation.name)] = reservation
        world.zones.setdefault(project, set()).add(zone)
        link = reservation.self_link
        op = world._new_operation(project, zone, "insert", link, reservation.id, link, faults)

        def run() -> None:
            if op.fault is not None:
                world.reservations.pop((project, zone, reservation.name), None)
                world._fail_with_fault(op)
                return

            def ready() -> None:
                reservation.status = "READY"
                _adopt(world, reservation)
                world._finish(op)

            world._after(world.profile.set_labels_seconds + op.extra_seconds, ready)  # ESTIMATE: as quick

        world._run_serialized(op, run)
        return op.to_json()


def _reservation(world: World, project: str, zone: str, name: str) -> Reservation:
    found = world.reservations.get((project, zone, name))
    if found is None:
        raise not_found(f"projects/{project}/zones/{zone}/reservations/{name}")
    return found


def get(world: World, project: str, zone: str, name: str) -> dict[str, Any]:
    with world.cond:
        return _reservation(world, project, zone, name).to_json()


def list_items(world: World, project: str, zone: str, filter_text: str | None) -> list[dict[str, Any]]:
    predicate = compile_query_filter(filter_text)
    with world.cond:
        items = [r.to_json() for (p, z, _), r in sorted(world.reservations.items()) if p == project and z == zone]
    return [item for item in items if predicate(item)]


def delete(world: World, project: str, zone: str, name: str, faults: list[Fault]) -> dict[str, Any]:
    """DELETING, then gone; its consumers keep running without it (ESTIMATE)."""
    with world.cond:
        reservation = _reservation(world, project, zone, name)
        link = reservation.self_link
        op = world._new_operation(project, zone, "delete", link, reservation.id, link, faults)

        def run() -> None:
            if world._fail_with_fault(op):
                return
            reservation.status = "DELETING"

            def gone() -> None:
                for instance in world.instances.values():
                    if instance.consumed_reservation is reservation:
                        release(instance)
                if world.reservations.get((project, zone, name)) is reservation:
                    del world.reservations[(project, zone, name)]
                world._finish(op)

            world._after(world.profile.set_labels_seconds + op.extra_seconds, gone)

        world._run_serialized(op, run)
        return op.to_json()


def reservation_list(world: World, project: str) -> list[dict[str, Any]]:
    """Every reservation of a project, all zones (for tests and benchmarks)."""
    with world.cond:
        return [r.to_json() for (p, _, _), r in sorted(world.reservations.items()) if p == project]
