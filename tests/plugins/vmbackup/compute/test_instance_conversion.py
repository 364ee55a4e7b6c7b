"""The Compute Engine edge of an instance's configuration: what is read from a VM, and the new VM built from it (its
GPUs named in its own zone)."""

from __future__ import annotations

from google.cloud import compute_v1

from vmbackup.compute.instance_conversion import config_of_instance, instance_of_config
from vmbackup.model.instance_config import AcceleratorConfig, AccessConfig, SchedulingConfig


def test_a_vm_is_read_without_our_labels_its_address_or_its_local_ssd(db_vm: compute_v1.Instance) -> None:
    config = config_of_instance(db_vm)
    assert config["labels"] == {"app": "shop", "tier": "db"}
    assert config["network_interfaces"][0]["access_configs"] == [
        AccessConfig(type="ONE_TO_ONE_NAT", name="external-nat")
    ]
    assert [d["disk"] for d in config["disks"]] == ["db-1", "db-1-data"]


def test_the_new_vm_built_from_a_configuration_reads_back_as_that_configuration(db_vm: compute_v1.Instance) -> None:
    config = config_of_instance(db_vm)
    body = instance_of_config(config, "p", "europe-west1-b", "restored")
    assert body.machine_type == "zones/europe-west1-b/machineTypes/n2-standard-4"
    assert [d.source for d in body.disks] == [
        "projects/p/zones/europe-west1-b/disks/db-1",
        "projects/p/zones/europe-west1-b/disks/db-1-data",
    ]
    assert config_of_instance(body) == config


def test_a_gpu_vm_is_read_with_its_gpus_and_host_maintenance_policy(gpu_vm: compute_v1.Instance) -> None:
    config = config_of_instance(gpu_vm)
    assert config["guest_accelerators"] == [AcceleratorConfig(type="nvidia-tesla-t4", count=1)]
    assert config["scheduling"] == SchedulingConfig(on_host_maintenance="TERMINATE", automatic_restart=False)


def test_a_vm_without_gpus_is_read_without_gpus_or_scheduling(db_vm: compute_v1.Instance) -> None:
    config = config_of_instance(db_vm)
    assert ("guest_accelerators" in config, "scheduling" in config) == (False, False)


def test_the_new_vm_names_its_gpu_type_in_its_own_project_and_zone(gpu_vm: compute_v1.Instance) -> None:
    body = instance_of_config(config_of_instance(gpu_vm), "dr", "europe-west4-a", "restored")
    (gpu,) = body.guest_accelerators
    assert gpu.accelerator_type == "projects/dr/zones/europe-west4-a/acceleratorTypes/nvidia-tesla-t4"
    assert gpu.accelerator_count == 1
    assert (body.scheduling.on_host_maintenance, body.scheduling.automatic_restart) == ("TERMINATE", False)


def test_a_new_vm_without_gpus_leaves_scheduling_to_compute_engine(db_vm: compute_v1.Instance) -> None:
    body = instance_of_config(config_of_instance(db_vm), "p", "europe-west1-b", "restored")
    assert (list(body.guest_accelerators), "scheduling" in body) == ([], False)
