"""Self-describing backups: what a restore needs when the source VM is gone, recorded with each snapshot.

At resolve time the backup DAG reads each instance anyway; from it this module keeps the configuration a new VM
needs (machine type, network interfaces, tags, service accounts, labels) and, per disk, whether it was the boot
disk, its device name and autoDelete. Each snapshot of the run carries the lot in its description (one line of
JSON after a marker) and the per-disk facts also as labels (``vmbackup-boot``, ``vmbackup-device``), so a look
at the snapshot list answers "which was the boot disk" too. A restore whose source VM no longer exists reads the
record back as a ``compute_v1.Instance`` and plans exactly as if it had read the VM.

No Airflow import: loaded by workers and by tests.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any, NotRequired, TypedDict

from google.cloud import compute_v1

from vmbackup.compute.hook import resource_name
from vmbackup.model import labels as vmlabels
from vmbackup.model.policy import RESERVED_LABEL_PREFIX

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


class InstanceRecord(TypedDict):
    """The source VM as a restore needs it (camelCase, as the REST API names the fields)."""

    instance: str
    machineType: str
    networkInterfaces: list[RecordedNic]
    tags: list[str]
    serviceAccounts: list[RecordedAccount]
    labels: dict[str, str]
    disks: list[RecordedDisk]


def instance_record(instance: compute_v1.Instance) -> InstanceRecord:
    nics: list[RecordedNic] = []
    for nic in instance.network_interfaces:
        entry = RecordedNic(network=nic.network)
        if nic.subnetwork:
            entry["subnetwork"] = nic.subnetwork
        if nic.access_configs:
            entry["externalAccess"] = nic.access_configs[0].type_ or "ONE_TO_ONE_NAT"
        nics.append(entry)
    return InstanceRecord(
        instance=instance.name,
        machineType=resource_name(instance.machine_type),
        networkInterfaces=nics,
        tags=list(instance.tags.items),
        serviceAccounts=[RecordedAccount(email=sa.email, scopes=list(sa.scopes)) for sa in instance.service_accounts],
        labels={k: v for k, v in instance.labels.items() if not k.startswith(RESERVED_LABEL_PREFIX)},
        disks=[
            RecordedDisk(
                disk=resource_name(d.source),
                deviceName=d.device_name or resource_name(d.source),
                boot=bool(d.boot),
                autoDelete=bool(d.auto_delete),
            )
            for d in instance.disks
            if d.source
        ],
    )


def recorded_disk(record: InstanceRecord | None, disk: str) -> RecordedDisk | None:
    return next((d for d in record["disks"] if d["disk"] == disk), None) if record else None


def disk_labels(record: InstanceRecord | None, disk: str) -> dict[str, str]:
    """Per-disk snapshot labels: was it the boot disk, and its device name (a valid label value)."""
    found = recorded_disk(record, disk)
    if found is None:
        return {}
    return {vmlabels.BOOT: "true" if found["boot"] else "false", vmlabels.DEVICE: found["deviceName"][:63]}


def describe(summary: str, record: InstanceRecord | None) -> str:
    """The snapshot description: the readable summary, then the record on a line of its own."""
    if record is None:
        return summary
    text = json.dumps(record, sort_keys=True, separators=(",", ":"))
    if len(summary) + len(RECORD_MARKER) + len(text) + 1 > MAX_RECORD_CHARS:
        trimmed = dict(record)
        trimmed["labels"] = {}
        text = json.dumps(trimmed, sort_keys=True, separators=(",", ":"))
    if len(summary) + len(RECORD_MARKER) + len(text) + 1 > MAX_RECORD_CHARS:
        log.warning("the configuration of %s is too long to record with its snapshots", record["instance"])
        return summary
    return f"{summary}\n{RECORD_MARKER}{text}"


def read_record(description: str) -> InstanceRecord | None:
    for line in (description or "").splitlines():
        if line.startswith(RECORD_MARKER):
            try:
                data = json.loads(line[len(RECORD_MARKER) :])
            except json.JSONDecodeError:
                return None
            return record_fields(data)
    return None


def recorded_instance(snapshots: Iterable[compute_v1.Snapshot], project: str, zone: str) -> compute_v1.Instance | None:
    """The source VM as recorded by the run these snapshots belong to; None for runs that recorded nothing."""
    record = next((r for r in (read_record(s.description) for s in snapshots) if r is not None), None)
    if record is None:
        return None
    return compute_v1.Instance(
        name=record["instance"],
        machine_type=f"zones/{zone}/machineTypes/{record['machineType']}",
        network_interfaces=[
            compute_v1.NetworkInterface(
                network=nic["network"],
                access_configs=[compute_v1.AccessConfig(type_=nic["externalAccess"], name="External NAT")]
                if nic.get("externalAccess")
                else [],
                **({"subnetwork": nic["subnetwork"]} if nic.get("subnetwork") else {}),
            )
            for nic in record["networkInterfaces"]
        ],
        tags=compute_v1.Tags(items=record["tags"]),
        service_accounts=[
            compute_v1.ServiceAccount(email=sa["email"], scopes=sa["scopes"]) for sa in record["serviceAccounts"]
        ],
        labels=record["labels"],
        disks=[
            compute_v1.AttachedDisk(
                source=f"projects/{project}/zones/{zone}/disks/{d['disk']}",
                device_name=d["deviceName"],
                boot=d["boot"],
                auto_delete=d["autoDelete"],
            )
            for d in record["disks"]
        ],
    )


def record_fields(value: Any) -> InstanceRecord | None:
    """A record carried through XCom (a plain dict), or None."""
    return value if isinstance(value, dict) and "disks" in value else None  # type: ignore[return-value]
