"""Fixtures shared by the tests of several vmbackup packages."""

from __future__ import annotations

import pytest
from google.cloud import compute_v1

API = "https://www.googleapis.com/compute/v1/projects/p"


@pytest.fixture
def db_vm() -> compute_v1.Instance:
    """A VM as instances.get returns it: two NICs (one with an external address), a lock label of ours, a boot
    disk, a data disk and a Local SSD."""
    return compute_v1.Instance(
        name="db-1",
        machine_type=f"{API}/zones/europe-west1-b/machineTypes/n2-standard-4",
        network_interfaces=[
            compute_v1.NetworkInterface(
                network=f"{API}/global/networks/default",
                subnetwork=f"{API}/regions/europe-west1/subnetworks/default",
                access_configs=[
                    compute_v1.AccessConfig(type_="ONE_TO_ONE_NAT", name="external-nat", nat_i_p="203.0.113.7")
                ],
            ),
            compute_v1.NetworkInterface(network=f"{API}/global/networks/backend"),
        ],
        tags=compute_v1.Tags(items=["db", "ssh"]),
        service_accounts=[
            compute_v1.ServiceAccount(
                email="123-compute@developer.gserviceaccount.com",
                scopes=["https://www.googleapis.com/auth/cloud-platform"],
            )
        ],
        labels={"app": "shop", "tier": "db", "vmbackup-lock": "abc"},
        disks=[
            compute_v1.AttachedDisk(
                source=f"{API}/zones/europe-west1-b/disks/db-1",
                device_name="persistent-disk-0",
                boot=True,
                auto_delete=True,
            ),
            compute_v1.AttachedDisk(
                source=f"{API}/zones/europe-west1-b/disks/db-1-data", device_name="data", boot=False, auto_delete=False
            ),
            compute_v1.AttachedDisk(type_="SCRATCH", device_name="local-ssd-0", auto_delete=True),
        ],
    )


@pytest.fixture
def gpu_vm() -> compute_v1.Instance:
    """An ML inference VM as instances.get returns it: an N1 type with one T4 GPU, set to stop for host maintenance
    and not to restart by itself."""
    zone = f"{API}/zones/us-central1-a"
    return compute_v1.Instance(
        name="infer-1",
        machine_type=f"{zone}/machineTypes/n1-standard-8",
        network_interfaces=[compute_v1.NetworkInterface(network=f"{API}/global/networks/default")],
        guest_accelerators=[
            compute_v1.AcceleratorConfig(
                accelerator_type=f"{zone}/acceleratorTypes/nvidia-tesla-t4", accelerator_count=1
            )
        ],
        scheduling=compute_v1.Scheduling(on_host_maintenance="TERMINATE", automatic_restart=False),
        disks=[compute_v1.AttachedDisk(source=f"{zone}/disks/infer-1", boot=True, auto_delete=True)],
    )
