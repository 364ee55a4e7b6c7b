"""The Compute Engine edge of an instance's configuration: what is read from a VM, and the new VM built from it."""

from __future__ import annotations

from google.cloud import compute_v1

from vmbackup.compute.instance_conversion import config_of_instance, instance_of_config
from vmbackup.model.instance_config import AccessConfig


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
