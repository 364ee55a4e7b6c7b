"""An instance's configuration as this product knows it: the one shape shared by backup and restore.

The backup run reads it from the VM (kept with each snapshot as the backup record, backup_record.py), and a
restore plans from it: read from the source VM, or from the record once the VM is gone, then the spec's overrides
applied for the new VM (restore/plan.py). It converts to and from ``compute_v1.Instance`` only at the Compute
Engine edge (compute/instance_conversion.py) and to and from JSON only where the record is written and read. Plain
JSON data (it travels through XCom inside a restore plan), snake_case.

No Airflow or google-cloud-compute import: loaded at DAG parse time too.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

# Compute Engine's default (and recommended) name of an access config (AccessConfig.name reference:
# https://cloud.google.com/compute/docs/reference/rest/v1/instances): the name a recorded one is restored with.
EXTERNAL_NAT = "External NAT"
ONE_TO_ONE_NAT = "ONE_TO_ONE_NAT"


class AccessConfig(TypedDict):
    type: str  # ONE_TO_ONE_NAT: the kind of external access, never the address itself
    name: str


class NicConfig(TypedDict):
    network: str  # a URL, as Compute Engine returns it (or a partial one for instances.insert)
    subnetwork: str | None
    access_configs: list[AccessConfig]


class AccountConfig(TypedDict):
    email: str
    scopes: list[str]


class DiskConfig(TypedDict):
    disk: str  # the disk's name
    device_name: str
    boot: bool
    auto_delete: bool


class AcceleratorConfig(TypedDict):
    type: str  # the accelerator type's name (nvidia-tesla-t4), not its URL: the URL names the source's zone
    count: int


class SchedulingConfig(TypedDict):
    on_host_maintenance: str  # MIGRATE or TERMINATE
    automatic_restart: bool


class InstanceConfig(TypedDict):
    """A VM as a restore needs it. A restore plan written by an earlier version lacks ``name`` and ``disks``;
    ``guest_accelerators`` and ``scheduling`` are there only for a VM with GPUs (model/gpus.py)."""

    name: str
    machine_type: str  # the machine type's name (n2-standard-4), not its URL
    network_interfaces: list[NicConfig]
    tags: list[str]
    labels: dict[str, str]  # the user's labels only: none with the reserved vmbackup- prefix
    service_accounts: list[AccountConfig]
    disks: list[DiskConfig]  # persistent disks only, in attach order
    guest_accelerators: NotRequired[list[AcceleratorConfig]]  # GPUs attached to the VM (not those of its type)
    scheduling: NotRequired[SchedulingConfig]


def attached_disk(config: InstanceConfig | None, disk: str) -> DiskConfig | None:
    """How the named disk is attached to the VM; None when it is not (or nothing is known of the VM)."""
    return next((d for d in config["disks"] if d["disk"] == disk), None) if config else None
