"""The backup record is a stored format: records earlier versions wrote are read, and the same VM is recorded in
the same bytes as before; a VM with GPUs records them (type name and count) and its host maintenance policy."""

from __future__ import annotations

from google.cloud import compute_v1

from vmbackup.compute.instance_conversion import config_of_instance
from vmbackup.model import labels as vmlabels
from vmbackup.model.backup_record import describe, disk_labels, read_record
from vmbackup.model.instance_config import AccessConfig, AccountConfig, DiskConfig, InstanceConfig, NicConfig

API = "https://www.googleapis.com/compute/v1/projects/p"
SUMMARY = "vmbackup team/nightly of db-1/db-1"
# The description the version before InstanceConfig wrote for the `db_vm` fixture (byte for byte).
EARLIER_DESCRIPTION = (
    SUMMARY + "\nvmbackup-record:"
    '{"disks":[{"autoDelete":true,"boot":true,"deviceName":"persistent-disk-0","disk":"db-1"},'
    '{"autoDelete":false,"boot":false,"deviceName":"data","disk":"db-1-data"}],"instance":"db-1",'
    '"labels":{"app":"shop","tier":"db"},"machineType":"n2-standard-4",'
    f'"networkInterfaces":[{{"externalAccess":"ONE_TO_ONE_NAT","network":"{API}/global/networks/default",'
    f'"subnetwork":"{API}/regions/europe-west1/subnetworks/default"}},'
    f'{{"network":"{API}/global/networks/backend"}}],'
    '"serviceAccounts":[{"email":"123-compute@developer.gserviceaccount.com",'
    '"scopes":["https://www.googleapis.com/auth/cloud-platform"]}],"tags":["db","ssh"]}'
)


def test_a_record_an_earlier_version_wrote_is_read_as_the_vms_configuration() -> None:
    assert read_record(EARLIER_DESCRIPTION) == InstanceConfig(
        name="db-1",
        machine_type="n2-standard-4",
        network_interfaces=[
            NicConfig(
                network=f"{API}/global/networks/default",
                subnetwork=f"{API}/regions/europe-west1/subnetworks/default",
                access_configs=[AccessConfig(type="ONE_TO_ONE_NAT", name="External NAT")],
            ),
            NicConfig(network=f"{API}/global/networks/backend", subnetwork=None, access_configs=[]),
        ],
        tags=["db", "ssh"],
        labels={"app": "shop", "tier": "db"},
        service_accounts=[
            AccountConfig(
                email="123-compute@developer.gserviceaccount.com",
                scopes=["https://www.googleapis.com/auth/cloud-platform"],
            )
        ],
        disks=[
            DiskConfig(disk="db-1", device_name="persistent-disk-0", boot=True, auto_delete=True),
            DiskConfig(disk="db-1-data", device_name="data", boot=False, auto_delete=False),
        ],
    )


def test_a_vm_is_recorded_in_the_same_bytes_as_before(db_vm: compute_v1.Instance) -> None:
    assert describe(SUMMARY, config_of_instance(db_vm)) == EARLIER_DESCRIPTION


def test_a_record_read_back_is_written_again_unchanged() -> None:
    assert describe(SUMMARY, read_record(EARLIER_DESCRIPTION)) == EARLIER_DESCRIPTION


def test_a_description_without_a_record_reads_as_none() -> None:
    assert read_record("made before backups described themselves") is None
    assert read_record(SUMMARY + "\nvmbackup-record:{not json") is None


def test_a_record_too_long_for_the_description_drops_the_labels_first(db_vm: compute_v1.Instance) -> None:
    db_vm.labels.update({f"l{i}": "v" * 60 for i in range(40)})
    described = describe(SUMMARY, config_of_instance(db_vm))
    recorded = read_record(described)
    assert recorded is not None
    assert (recorded["labels"], recorded["machine_type"]) == ({}, "n2-standard-4")


def test_each_snapshot_is_labelled_with_its_disks_boot_flag_and_device(db_vm: compute_v1.Instance) -> None:
    config = config_of_instance(db_vm)
    assert disk_labels(config, "db-1-data") == {vmlabels.BOOT: "false", vmlabels.DEVICE: "data"}
    assert disk_labels(config, "not-attached") == {}
    assert disk_labels(None, "db-1") == {}


def test_a_gpu_vm_is_recorded_with_its_gpus_and_read_back_as_it_was(gpu_vm: compute_v1.Instance) -> None:
    config = config_of_instance(gpu_vm)
    assert read_record(describe(SUMMARY, config)) == config


def test_a_gpu_is_recorded_by_its_type_name_not_its_zones_url(gpu_vm: compute_v1.Instance) -> None:
    described = describe(SUMMARY, config_of_instance(gpu_vm))
    assert '"guestAccelerators":[{"acceleratorCount":1,"acceleratorType":"nvidia-tesla-t4"}]' in described
    assert '"scheduling":{"automaticRestart":false,"onHostMaintenance":"TERMINATE"}' in described
    assert "acceleratorTypes/" not in described


def test_a_record_too_long_for_the_description_keeps_the_gpus(gpu_vm: compute_v1.Instance) -> None:
    gpu_vm.labels.update({f"l{i}": "v" * 60 for i in range(40)})
    recorded = read_record(describe(SUMMARY, config_of_instance(gpu_vm)))
    assert recorded is not None
    assert (recorded["labels"], recorded["guest_accelerators"]) == ({}, [{"type": "nvidia-tesla-t4", "count": 1}])
