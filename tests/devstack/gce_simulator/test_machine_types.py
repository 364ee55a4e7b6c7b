"""The simulator's machine types, driven by the real google-cloud-compute client: a zone that does not offer a type
answers 404 to machineTypes.get and 400 naming resource.machineType to an instances.insert of it."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.cloud import compute_v1

from devstack.gce_simulator import ComputeSimulator
from tests.fixtures.gce import GCE_PROJECT, GceClients

ZONE = "us-central1-a"


def test_a_predefined_type_is_offered(gce_clients: GceClients) -> None:
    found = gce_clients.machine_types.get(project=GCE_PROJECT, zone=ZONE, machine_type="n2-standard-4")
    assert found.name == "n2-standard-4"


def test_a_type_the_zone_does_not_offer_is_not_found(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.world.withdrawn_machine_types[ZONE] = {"c3-standard-4"}
    with pytest.raises(exceptions.NotFound):
        gce_clients.machine_types.get(project=GCE_PROJECT, zone=ZONE, machine_type="c3-standard-4")
    with pytest.raises(exceptions.NotFound):
        gce_clients.machine_types.get(project=GCE_PROJECT, zone=ZONE, machine_type="no-such-type")


def test_an_insert_of_a_type_the_zone_does_not_offer_is_refused(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    gce_sim.world.withdrawn_machine_types[ZONE] = {"c3-standard-4"}
    disk = str(gce_sim.add_disk(GCE_PROJECT, ZONE, "spare")["selfLink"])
    vm = compute_v1.Instance(
        name="c3-vm",
        machine_type=f"zones/{ZONE}/machineTypes/c3-standard-4",
        network_interfaces=[compute_v1.NetworkInterface(network="default")],
        disks=[compute_v1.AttachedDisk(source=disk, boot=True)],
    )
    with pytest.raises(exceptions.BadRequest, match="Machine type with name 'c3-standard-4' does not exist in zone"):
        gce_clients.instances.insert_unary(project=GCE_PROJECT, zone=ZONE, instance_resource=vm)
