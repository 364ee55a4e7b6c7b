"""Reservations through the real client (issue 23): insert/get/list/delete, consumption by affinity, inUseCount,
a stopped VM freeing its place, stockouts that a reservation rides out, a full specific reservation."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.cloud import compute_v1

from devstack.gce_simulator import ComputeSimulator, SimulatorControl, compute_client
from tests.fixtures.gce import GCE_PROJECT, LASTING_STOCKOUT_SECONDS, GceClients

P = GCE_PROJECT
ZONE = "europe-west1-c"
KEY = "compute.googleapis.com/reservation-name"
DONE = compute_v1.Operation.Status.DONE


def specific(*names: str) -> dict[str, object]:
    return {"consumeReservationType": "SPECIFIC_RESERVATION", "key": KEY, "values": list(names)}


@pytest.fixture
def reservations(gce_sim: ComputeSimulator) -> compute_v1.ReservationsClient:
    return compute_client(compute_v1.ReservationsClient, gce_sim.base_url)


def wait(clients: GceClients, op: compute_v1.Operation) -> compute_v1.Operation:
    return clients.zone_operations.wait(project=P, zone=ZONE, operation=op.name)


def power(clients: GceClients, verb: str, name: str) -> compute_v1.Operation:
    method = getattr(clients.instances, f"{verb}_unary")
    return wait(clients, method(project=P, zone=ZONE, instance=name))


def in_use(reservations: compute_v1.ReservationsClient, name: str) -> int:
    return reservations.get(project=P, zone=ZONE, reservation=name).specific_reservation.in_use_count


def consumed(clients: GceClients, name: str) -> str:
    vm = clients.instances.get(project=P, zone=ZONE, instance=name)
    return vm.resource_status.reservation_consumption_info.consumed_reservation


def test_insert_get_list_delete_through_the_client(
    gce_sim: ComputeSimulator, gce_clients: GceClients, reservations: compute_v1.ReservationsClient
) -> None:
    resource = compute_v1.Reservation(
        name="r-api",
        specific_reservation=compute_v1.AllocationSpecificSKUReservation(
            count=2,
            instance_properties=compute_v1.AllocationSpecificSKUAllocationReservedInstanceProperties(
                machine_type="n2-standard-4"
            ),
        ),
        specific_reservation_required=True,
    )
    op = reservations.insert_unary(project=P, zone=ZONE, reservation_resource=resource)
    done = wait(gce_clients, op)
    assert done.status == DONE
    assert not done.error.errors
    got = reservations.get(project=P, zone=ZONE, reservation="r-api")
    assert (got.status, got.specific_reservation.count, got.specific_reservation.in_use_count) == ("READY", 2, 0)
    assert got.specific_reservation.instance_properties.machine_type == "n2-standard-4"
    assert got.specific_reservation_required
    assert got.self_link.endswith(f"projects/{P}/zones/{ZONE}/reservations/r-api")
    assert [r.name for r in reservations.list(project=P, zone=ZONE)] == ["r-api"]
    with pytest.raises(exceptions.Conflict):
        reservations.insert_unary(project=P, zone=ZONE, reservation_resource=resource)
    assert wait(gce_clients, reservations.delete_unary(project=P, zone=ZONE, reservation="r-api")).status == DONE
    with pytest.raises(exceptions.NotFound):
        reservations.get(project=P, zone=ZONE, reservation="r-api")


def test_a_specific_vm_consumes_while_running_and_frees_its_place_when_stopped(
    gce_sim: ComputeSimulator, gce_clients: GceClients, reservations: compute_v1.ReservationsClient
) -> None:
    gce_sim.add_reservation(P, ZONE, "r1", count=1, machine_type="e2-medium", specific_reservation_required=True)
    gce_sim.add_instance(P, ZONE, "vm-r1", reservation_affinity=specific("r1"))
    assert in_use(reservations, "r1") == 1
    assert consumed(gce_clients, "vm-r1") == f"projects/{P}/zones/{ZONE}/reservations/r1"
    vm = gce_clients.instances.get(project=P, zone=ZONE, instance="vm-r1")
    assert vm.reservation_affinity.consume_reservation_type == "SPECIFIC_RESERVATION"
    assert list(vm.reservation_affinity.values) == ["r1"]
    assert not power(gce_clients, "stop", "vm-r1").error.errors
    assert in_use(reservations, "r1") == 0
    assert consumed(gce_clients, "vm-r1") == ""
    assert not power(gce_clients, "start", "vm-r1").error.errors
    assert in_use(reservations, "r1") == 1
    assert consumed(gce_clients, "vm-r1").endswith("/reservations/r1")


def test_any_reservation_consumes_a_matching_automatic_one_and_no_reservation_none(
    gce_sim: ComputeSimulator, gce_clients: GceClients, reservations: compute_v1.ReservationsClient
) -> None:
    gce_sim.add_reservation(P, ZONE, "auto", count=2, machine_type="e2-standard-2")
    gce_sim.add_reservation(P, ZONE, "named", count=2, machine_type="e2-standard-2", specific_reservation_required=True)
    gce_sim.add_instance(P, ZONE, "any-1", machine_type="e2-standard-2")  # affinity unset: ANY_RESERVATION
    gce_sim.add_instance(P, ZONE, "other-type", machine_type="n2-standard-2")  # matches nothing
    gce_sim.add_instance(
        P,
        ZONE,
        "none-1",
        machine_type="e2-standard-2",
        reservation_affinity={"consumeReservationType": "NO_RESERVATION"},
    )
    assert (in_use(reservations, "auto"), in_use(reservations, "named")) == (1, 0)
    assert consumed(gce_clients, "any-1").endswith("/reservations/auto")
    assert consumed(gce_clients, "other-type") == consumed(gce_clients, "none-1") == ""


def test_a_stockout_does_not_fail_a_vm_with_reserved_room_but_fails_one_without(
    gce_sim: ComputeSimulator, gce_clients: GceClients, reservations: compute_v1.ReservationsClient
) -> None:
    gce_sim.add_reservation(P, ZONE, "r2", count=1, specific_reservation_required=True)
    gce_sim.add_instance(P, ZONE, "reserved", status="TERMINATED", reservation_affinity=specific("r2"))
    gce_sim.add_instance(P, ZONE, "unreserved", status="TERMINATED")
    SimulatorControl(gce_sim.base_url).stockout(ZONE, seconds=LASTING_STOCKOUT_SECONDS)
    assert not power(gce_clients, "start", "reserved").error.errors
    assert gce_sim.instance(P, ZONE, "reserved")["status"] == "RUNNING"
    assert in_use(reservations, "r2") == 1
    [error] = power(gce_clients, "start", "unreserved").error.errors
    assert error.code == "ZONE_RESOURCE_POOL_EXHAUSTED"


def test_a_full_specific_reservation_fails_the_start(
    gce_sim: ComputeSimulator, gce_clients: GceClients, reservations: compute_v1.ReservationsClient
) -> None:
    gce_sim.add_reservation(P, ZONE, "r3", count=1, specific_reservation_required=True)
    gce_sim.add_instance(P, ZONE, "holder", reservation_affinity=specific("r3"))
    gce_sim.add_instance(P, ZONE, "late", status="TERMINATED", reservation_affinity=specific("r3"))
    [error] = power(gce_clients, "start", "late").error.errors
    assert error.code == "RESERVATION_CAPACITY_EXCEEDED"
    assert f"projects/{P}/zones/{ZONE}/reservations/r3" in error.message
    assert gce_sim.instance(P, ZONE, "late")["status"] == "TERMINATED"
    assert not power(gce_clients, "stop", "holder").error.errors  # the place is free again
    assert not power(gce_clients, "start", "late").error.errors
    assert in_use(reservations, "r3") == 1


def test_suspend_frees_and_resume_reconsumes(
    gce_sim: ComputeSimulator, gce_clients: GceClients, reservations: compute_v1.ReservationsClient
) -> None:
    gce_sim.add_reservation(P, ZONE, "r4", count=1, specific_reservation_required=True)
    gce_sim.add_instance(P, ZONE, "sus", reservation_affinity=specific("r4"))
    assert not power(gce_clients, "suspend", "sus").error.errors
    assert in_use(reservations, "r4") == 0
    assert not power(gce_clients, "resume", "sus").error.errors
    assert in_use(reservations, "r4") == 1


def test_insert_consumes_and_delete_frees(
    gce_sim: ComputeSimulator, gce_clients: GceClients, reservations: compute_v1.ReservationsClient
) -> None:
    gce_sim.add_reservation(P, ZONE, "r5", count=1, machine_type="e2-small", specific_reservation_required=True)
    gce_sim.add_disk(P, ZONE, "boot-r5")
    affinity = compute_v1.ReservationAffinity(consume_reservation_type="SPECIFIC_RESERVATION", key=KEY, values=["r5"])
    instance = compute_v1.Instance(
        name="new-r5",
        machine_type=f"zones/{ZONE}/machineTypes/e2-small",
        disks=[compute_v1.AttachedDisk(source=f"projects/{P}/zones/{ZONE}/disks/boot-r5", boot=True)],
        reservation_affinity=affinity,
    )
    gce_sim.stockout(ZONE, seconds=LASTING_STOCKOUT_SECONDS)  # the reservation holds the capacity
    op = gce_clients.instances.insert_unary(project=P, zone=ZONE, instance_resource=instance)
    assert not wait(gce_clients, op).error.errors
    assert in_use(reservations, "r5") == 1
    assert wait(gce_clients, gce_clients.instances.delete_unary(project=P, zone=ZONE, instance="new-r5")).status == DONE
    assert in_use(reservations, "r5") == 0


def test_targeting_an_automatic_reservation_by_name_is_refused_at_insert(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    gce_sim.add_reservation(P, ZONE, "auto-only", count=1)
    gce_sim.add_disk(P, ZONE, "boot-auto")
    instance = compute_v1.Instance(
        name="bad-target",
        disks=[compute_v1.AttachedDisk(source=f"projects/{P}/zones/{ZONE}/disks/boot-auto", boot=True)],
        reservation_affinity=compute_v1.ReservationAffinity(
            consume_reservation_type="SPECIFIC_RESERVATION", key=KEY, values=["auto-only"]
        ),
    )
    with pytest.raises(exceptions.BadRequest) as caught:
        gce_clients.instances.insert_unary(project=P, zone=ZONE, instance_resource=instance)
    assert "specificReservationRequired is not set" in caught.value.message


def test_a_stockout_of_one_machine_type_spares_the_others(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.add_instance(P, ZONE, "n2", machine_type="n2-standard-2", status="TERMINATED")
    gce_sim.add_instance(P, ZONE, "e2", machine_type="e2-medium", status="TERMINATED")
    SimulatorControl(gce_sim.base_url).stockout(ZONE, seconds=LASTING_STOCKOUT_SECONDS, machine_type="n2-standard-2")
    assert [e.code for e in power(gce_clients, "start", "n2").error.errors] == ["ZONE_RESOURCE_POOL_EXHAUSTED"]
    assert not power(gce_clients, "start", "e2").error.errors


def test_control_plane_seeds_reservations_and_the_preset_reserves_every_vm(gce_sim: ComputeSimulator) -> None:
    control = SimulatorControl(gce_sim.base_url)
    seeded = control.add_reservation(P, ZONE, "r-ctl", count=3, machine_type="n2-standard-8")
    assert seeded["specificReservation"]["count"] == "3"
    assert [r["name"] for r in control.reservations(P)] == ["r-ctl"]
    control.apply_preset("reserved_vms")
    names = {r["name"]: r for r in control.reservations(P)}
    assert names["db-1-reservation"]["specificReservation"]["inUseCount"] == "1"
    db = control.instance(P, "us-central1-a", "db-1")
    assert db["reservationAffinity"]["values"] == ["db-1-reservation"]
    assert db["resourceStatus"]["reservationConsumptionInfo"]["consumedReservation"].endswith("/db-1-reservation")
