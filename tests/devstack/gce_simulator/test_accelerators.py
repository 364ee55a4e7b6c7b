"""The simulator's GPUs, driven by the real google-cloud-compute client: accelerator types exist per zone, and an
instances.insert with GPUs is refused as Compute Engine refuses it (a type the zone does not offer, a type URL of
another zone, a machine series that takes no GPU, a VM that would live-migrate)."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.cloud import compute_v1

from devstack.gce_simulator import ComputeSimulator
from tests.fixtures.gce import GCE_PROJECT, GceClients

ZONE = "us-central1-a"
T4 = "nvidia-tesla-t4"
TERMINATE = compute_v1.Scheduling(on_host_maintenance="TERMINATE", automatic_restart=True)


def gpu_vm(
    gce_sim: ComputeSimulator,
    *,
    machine_type: str = "n1-standard-4",
    gpus: list[compute_v1.AcceleratorConfig] | None = None,
    scheduling: compute_v1.Scheduling | None = TERMINATE,
) -> compute_v1.Instance:
    disk = str(gce_sim.add_disk(GCE_PROJECT, ZONE, "gpu-boot")["selfLink"])
    vm = compute_v1.Instance(
        name="gpu-vm",
        machine_type=f"zones/{ZONE}/machineTypes/{machine_type}",
        network_interfaces=[compute_v1.NetworkInterface(network="default")],
        disks=[compute_v1.AttachedDisk(source=disk, boot=True)],
        guest_accelerators=gpus if gpus is not None else [t4()],
    )
    if scheduling is not None:
        vm.scheduling = scheduling
    return vm


def t4(zone: str = ZONE, count: int = 1) -> compute_v1.AcceleratorConfig:
    return compute_v1.AcceleratorConfig(
        accelerator_type=f"projects/{GCE_PROJECT}/zones/{zone}/acceleratorTypes/{T4}", accelerator_count=count
    )


def insert(gce_clients: GceClients, vm: compute_v1.Instance) -> None:
    op = gce_clients.instances.insert_unary(project=GCE_PROJECT, zone=ZONE, instance_resource=vm)
    assert not gce_clients.zone_operations.wait(project=GCE_PROJECT, zone=ZONE, operation=op.name).error.errors


def test_a_zone_offers_a_gpu_type(gce_clients: GceClients) -> None:
    found = gce_clients.accelerator_types.get(project=GCE_PROJECT, zone=ZONE, accelerator_type=T4)
    assert (found.name, found.zone.rsplit("/", 1)[-1]) == (T4, ZONE)
    assert found.maximum_cards_per_instance >= 1


def test_a_gpu_type_the_zone_does_not_offer_is_not_found(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.world.withdrawn_accelerator_types[ZONE] = {T4}
    with pytest.raises(exceptions.NotFound):
        gce_clients.accelerator_types.get(project=GCE_PROJECT, zone=ZONE, accelerator_type=T4)
    with pytest.raises(exceptions.NotFound):
        gce_clients.accelerator_types.get(project=GCE_PROJECT, zone=ZONE, accelerator_type="nvidia-no-such-gpu")


def test_a_vm_with_gpus_that_stops_for_maintenance_keeps_them(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    insert(gce_clients, gpu_vm(gce_sim, gpus=[t4(count=2)]))

    vm = gce_clients.instances.get(project=GCE_PROJECT, zone=ZONE, instance="gpu-vm")
    (gpu,) = vm.guest_accelerators
    assert gpu.accelerator_type.endswith(f"/projects/{GCE_PROJECT}/zones/{ZONE}/acceleratorTypes/{T4}")
    assert gpu.accelerator_count == 2
    assert (vm.scheduling.on_host_maintenance, vm.scheduling.automatic_restart) == ("TERMINATE", True)


def test_gpus_on_a_vm_that_would_live_migrate_are_refused(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    with pytest.raises(exceptions.BadRequest, match="Instances with guest accelerators do not support live migration"):
        gce_clients.instances.insert_unary(
            project=GCE_PROJECT, zone=ZONE, instance_resource=gpu_vm(gce_sim, scheduling=None)
        )


def test_an_accelerator_optimized_type_must_stop_for_maintenance_too(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    vm = gpu_vm(gce_sim, machine_type="g2-standard-4", gpus=[], scheduling=None)  # its L4 comes with the type
    with pytest.raises(exceptions.BadRequest, match="do not support live migration"):
        gce_clients.instances.insert_unary(project=GCE_PROJECT, zone=ZONE, instance_resource=vm)


def test_an_accelerator_optimized_type_that_stops_for_maintenance_is_created(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    insert(gce_clients, gpu_vm(gce_sim, machine_type="a2-highgpu-1g", gpus=[]))
    assert gce_clients.instances.get(project=GCE_PROJECT, zone=ZONE, instance="gpu-vm").status == "RUNNING"


def test_a_gpu_the_zone_does_not_offer_is_refused(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.world.withdrawn_accelerator_types[ZONE] = {T4}
    with pytest.raises(exceptions.NotFound, match=f"zones/{ZONE}/acceleratorTypes/{T4}' was not found"):
        gce_clients.instances.insert_unary(project=GCE_PROJECT, zone=ZONE, instance_resource=gpu_vm(gce_sim))


def test_a_gpu_type_url_of_another_zone_is_refused(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    vm = gpu_vm(gce_sim, gpus=[t4(zone="europe-west1-b")])
    with pytest.raises(exceptions.BadRequest, match=r"field 'resource\.guestAccelerators\[0\]\.acceleratorType'"):
        gce_clients.instances.insert_unary(project=GCE_PROJECT, zone=ZONE, instance_resource=vm)


def test_a_gpu_on_a_machine_series_that_takes_none_is_refused(
    gce_sim: ComputeSimulator, gce_clients: GceClients
) -> None:
    vm = gpu_vm(gce_sim, machine_type="n2-standard-4")
    with pytest.raises(exceptions.BadRequest, match=r"\[nvidia-tesla-t4, n2-standard-4\] features are not compatible"):
        gce_clients.instances.insert_unary(project=GCE_PROJECT, zone=ZONE, instance_resource=vm)


def test_a_seeded_gpu_vm_reads_with_its_gpus(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    gce_sim.add_instance(GCE_PROJECT, ZONE, "infer-1", machine_type="n1-standard-8", guest_accelerators={T4: 1})

    vm = gce_clients.instances.get(project=GCE_PROJECT, zone=ZONE, instance="infer-1")
    assert [(g.accelerator_type.rsplit("/", 1)[-1], g.accelerator_count) for g in vm.guest_accelerators] == [(T4, 1)]
    assert vm.scheduling.on_host_maintenance == "TERMINATE"
