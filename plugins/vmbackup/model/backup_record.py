"""Self-describing backups: what a restore needs when the source VM is gone, recorded with each snapshot.

At resolve time the backup DAG reads each instance anyway; its InstanceConfig (model/instance_config.py) is what
a new VM needs (machine type, network interfaces, tags, service accounts, labels, and for a VM with GPUs those and
its host maintenance policy: model/gpus.py) and, per disk, whether it was the boot disk, its device name and
autoDelete. Each snapshot of the run carries the lot in its description (one line of JSON after a marker) and the
per-disk facts also as labels (``vmbackup-boot``, ``vmbackup-device``), so a look at the snapshot list answers
"which was the boot disk" too. A restore whose source VM no longer exists reads the
record back as an InstanceConfig and plans exactly as if it had read the VM.

The record's JSON (camelCase, as the REST API names the fields) is a stored format: snapshots made by earlier
versions carry it, so it is written and read here only, and never changes shape: fields are only ever added, and
only where they have something to say (``guestAccelerators`` and ``scheduling`` for a VM with GPUs), so a VM
without is recorded in the same bytes as before and a record without them reads as a VM without GPUs.

No Airflow or google-cloud-compute import: loaded by workers and by tests.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any, NotRequired, TypedDict

from vmbackup.model import labels as vmlabels
from vmbackup.model.instance_config import (
    EXTERNAL_NAT,
    AcceleratorConfig,
    AccessConfig,
    AccountConfig,
    DiskConfig,
    InstanceConfig,
    NicConfig,
    SchedulingConfig,
    attached_disk,
)

log = logging.getLogger(__name__)

RECORD_MARKER = "vmbackup-record:"
# Compute Engine documents no limit for a snapshot's description; the record is kept short all the same.
MAX_RECORD_CHARS = 2048


class RecordedNic(TypedDict):
    network: str
    subnetwork: NotRequired[str]
    externalAccess: NotRequired[str]  # the access config type (ONE_TO_ONE_NAT); never the address itself


class RecordedDisk(TypedDict):
    disk: str
    deviceName: str
    boot: bool
    autoDelete: bool


class RecordedAccount(TypedDict):
    email: str
    scopes: list[str]


class RecordedAccelerator(TypedDict):
    acceleratorType: str  # the type's name (nvidia-tesla-t4): its URL would name the source's zone
    acceleratorCount: int


class RecordedScheduling(TypedDict):
    onHostMaintenance: str
    automaticRestart: bool


class InstanceRecord(TypedDict):
    """The record's stored JSON (an InstanceConfig's fields, camelCase): the format, not a model to work with."""

    instance: str
    machineType: str
    networkInterfaces: list[RecordedNic]
    tags: list[str]
    serviceAccounts: list[RecordedAccount]
    labels: dict[str, str]
    disks: list[RecordedDisk]
    guestAccelerators: NotRequired[list[RecordedAccelerator]]  # a VM with GPUs only
    scheduling: NotRequired[RecordedScheduling]  # a VM with GPUs only


def record_of(config: InstanceConfig) -> InstanceRecord:
    """The record of a VM's configuration, as stored: only the first access config's type, never its name."""
    nics: list[RecordedNic] = []
    for nic in config["network_interfaces"]:
        entry = RecordedNic(network=nic["network"])
        if nic["subnetwork"]:
            entry["subnetwork"] = nic["subnetwork"]
        if nic["access_configs"]:
            entry["externalAccess"] = nic["access_configs"][0]["type"]
        nics.append(entry)
    record = InstanceRecord(
        instance=config["name"],
        machineType=config["machine_type"],
        networkInterfaces=nics,
        tags=list(config["tags"]),
        serviceAccounts=[
            RecordedAccount(email=a["email"], scopes=list(a["scopes"])) for a in config["service_accounts"]
        ],
        labels=dict(config["labels"]),
        disks=[
            RecordedDisk(disk=d["disk"], deviceName=d["device_name"], boot=d["boot"], autoDelete=d["auto_delete"])
            for d in config["disks"]
        ],
    )
    if config.get("guest_accelerators"):
        record["guestAccelerators"] = [
            RecordedAccelerator(acceleratorType=g["type"], acceleratorCount=g["count"])
            for g in config["guest_accelerators"]
        ]
    if "scheduling" in config:
        recorded = config["scheduling"]
        record["scheduling"] = RecordedScheduling(
            onHostMaintenance=recorded["on_host_maintenance"], automaticRestart=recorded["automatic_restart"]
        )
    return record


def config_of_record(value: Any) -> InstanceConfig | None:
    """The configuration a stored record (or one carried through XCom) describes; None when it is no record."""
    if not isinstance(value, dict) or "disks" not in value:
        return None
    record: InstanceRecord = value  # type: ignore[assignment]
    config = InstanceConfig(
        name=record["instance"],
        machine_type=record["machineType"],
        network_interfaces=[
            NicConfig(
                network=nic["network"],
                subnetwork=nic.get("subnetwork") or None,
                access_configs=[AccessConfig(type=nic["externalAccess"], name=EXTERNAL_NAT)]
                if nic.get("externalAccess")
                else [],
            )
            for nic in record["networkInterfaces"]
        ],
        tags=list(record["tags"]),
        labels=dict(record["labels"]),
        service_accounts=[AccountConfig(email=a["email"], scopes=list(a["scopes"])) for a in record["serviceAccounts"]],
        disks=[
            DiskConfig(disk=d["disk"], device_name=d["deviceName"], boot=d["boot"], auto_delete=d["autoDelete"])
            for d in record["disks"]
        ],
    )
    if record.get("guestAccelerators"):
        config["guest_accelerators"] = [
            AcceleratorConfig(type=g["acceleratorType"], count=int(g["acceleratorCount"]))
            for g in record["guestAccelerators"]
        ]
    if "scheduling" in record:
        kept = record["scheduling"]
        config["scheduling"] = SchedulingConfig(
            on_host_maintenance=kept["onHostMaintenance"], automatic_restart=bool(kept["automaticRestart"])
        )
    return config


def disk_labels(config: InstanceConfig | None, disk: str) -> dict[str, str]:
    """Per-disk snapshot labels: was it the boot disk, and its device name (a valid label value)."""
    found = attached_disk(config, disk)
    if found is None:
        return {}
    return {vmlabels.BOOT: "true" if found["boot"] else "false", vmlabels.DEVICE: found["device_name"][:63]}


def describe(summary: str, config: InstanceConfig | None) -> str:
    """The snapshot description: the readable summary, then the record on a line of its own."""
    if config is None:
        return summary
    record = record_of(config)
    text = json.dumps(record, sort_keys=True, separators=(",", ":"))
    if len(summary) + len(RECORD_MARKER) + len(text) + 1 > MAX_RECORD_CHARS:
        trimmed = dict(record)
        trimmed["labels"] = {}
        text = json.dumps(trimmed, sort_keys=True, separators=(",", ":"))
    if len(summary) + len(RECORD_MARKER) + len(text) + 1 > MAX_RECORD_CHARS:
        log.warning("the configuration of %s is too long to record with its snapshots", record["instance"])
        return summary
    return f"{summary}\n{RECORD_MARKER}{text}"


def read_record(description: str) -> InstanceConfig | None:
    """The configuration recorded in a snapshot's description; None when it carries no (readable) record."""
    for line in (description or "").splitlines():
        if line.startswith(RECORD_MARKER):
            try:
                data = json.loads(line[len(RECORD_MARKER) :])
            except json.JSONDecodeError:
                return None
            return config_of_record(data)
    return None


def recorded_config(descriptions: Iterable[str]) -> InstanceConfig | None:
    """The source VM as recorded by the run whose snapshots have these descriptions; None if it recorded nothing."""
    return next((c for c in (read_record(d) for d in descriptions) if c is not None), None)
