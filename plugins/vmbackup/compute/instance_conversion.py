"""The Compute Engine edge of an instance's configuration: ``compute_v1.Instance`` to InstanceConfig and back.

The only place the two meet: the backup run and a restore read a VM into an InstanceConfig here, and a restore's
new VM is built from one here (its instances.insert body).
"""

from __future__ import annotations

from vmbackup.compute.compute_library import compute_v1
from vmbackup.compute.operations import resource_name
from vmbackup.model.gpus import MIGRATE, accelerator_type_url, has_gpus
from vmbackup.model.instance_config import (
    ONE_TO_ONE_NAT,
    AcceleratorConfig,
    AccessConfig,
    AccountConfig,
    DiskConfig,
    InstanceConfig,
    NicConfig,
    SchedulingConfig,
)
from vmbackup.model.policy import RESERVED_LABEL_PREFIX


def config_of_instance(instance: compute_v1.Instance) -> InstanceConfig:
    """The VM's configuration as read: its labels without ours, its persistent disks (a Local SSD has no source),
    and for a VM with GPUs those and its host maintenance policy (model/gpus.py)."""
    config = InstanceConfig(
        name=instance.name,
        machine_type=resource_name(instance.machine_type),
        network_interfaces=[
            NicConfig(
                network=nic.network,
                subnetwork=nic.subnetwork or None,
                # Only the kind of external access is copied: the source's address stays with the source.
                access_configs=[AccessConfig(type=a.type_ or ONE_TO_ONE_NAT, name=a.name) for a in nic.access_configs],
            )
            for nic in instance.network_interfaces
        ],
        tags=list(instance.tags.items),
        labels={k: v for k, v in instance.labels.items() if not k.startswith(RESERVED_LABEL_PREFIX)},
        service_accounts=[AccountConfig(email=sa.email, scopes=list(sa.scopes)) for sa in instance.service_accounts],
        disks=[
            DiskConfig(
                disk=resource_name(d.source),
                device_name=d.device_name or resource_name(d.source),
                boot=bool(d.boot),
                auto_delete=bool(d.auto_delete),
            )
            for d in instance.disks
            if d.source
        ],
    )
    gpus = [
        AcceleratorConfig(type=resource_name(a.accelerator_type), count=a.accelerator_count)
        for a in instance.guest_accelerators
    ]
    if gpus:
        config["guest_accelerators"] = gpus
    if has_gpus(config):
        config["scheduling"] = SchedulingConfig(
            on_host_maintenance=instance.scheduling.on_host_maintenance or MIGRATE,
            automatic_restart=instance.scheduling.automatic_restart
            if "automatic_restart" in instance.scheduling
            else True,
        )
    return config


def instance_of_config(config: InstanceConfig, project: str, zone: str, description: str) -> compute_v1.Instance:
    """The instances.insert body of a new VM with this configuration, its disks and GPUs (in the zone) by name."""
    body = compute_v1.Instance(
        name=config["name"],
        description=description,
        machine_type=f"zones/{zone}/machineTypes/{config['machine_type']}",
        disks=[
            compute_v1.AttachedDisk(
                source=f"projects/{project}/zones/{zone}/disks/{disk['disk']}",
                boot=disk["boot"],
                device_name=disk["device_name"],
                auto_delete=disk["auto_delete"],
                mode="READ_WRITE",
                type_="PERSISTENT",
            )
            for disk in config["disks"]
        ],
        network_interfaces=[
            compute_v1.NetworkInterface(
                network=nic["network"],
                access_configs=[
                    compute_v1.AccessConfig(type_=a["type"], name=a["name"]) for a in nic["access_configs"]
                ],
                **({"subnetwork": nic["subnetwork"]} if nic["subnetwork"] else {}),
            )
            for nic in config["network_interfaces"]
        ],
        tags=compute_v1.Tags(items=config["tags"]),
        labels=config["labels"],
        service_accounts=[
            compute_v1.ServiceAccount(email=sa["email"], scopes=sa["scopes"]) for sa in config["service_accounts"]
        ],
        guest_accelerators=[
            compute_v1.AcceleratorConfig(
                accelerator_type=accelerator_type_url(project, zone, gpu["type"]), accelerator_count=gpu["count"]
            )
            for gpu in config.get("guest_accelerators", [])
        ],
    )
    scheduling = config.get("scheduling")
    if scheduling is not None:
        body.scheduling = compute_v1.Scheduling(
            on_host_maintenance=scheduling["on_host_maintenance"], automatic_restart=scheduling["automatic_restart"]
        )
    return body
