"""Restore drills: proof that a policy's backups restore, on a schedule of the policy's own (spec.verification).

A drill is a restore into a throwaway VM, planned by the same code as a VMRestore (``plan_restore``): the newest
run whose snapshots are all READY, the source VM's configuration (or the one the run recorded), but no external
address, the network, subnetwork and tags the policy names, and none of the source's labels (a drill VM must
never match a backup selector): only the drill's own labels. Everything a drill creates carries
``vmbackup-drill=<marker>`` and is deleted again at the end of every drill, whatever happened; the source VM and
the snapshots are only read.

This module holds the data (no Airflow import): the drill's Restore, names, and the drill report the DAG writes
to the bucket and the controller reads into status.verification.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field

from vmbackup.model.policy import BackupPolicy, PolicyError
from vmbackup.model.report import ReportModel
from vmbackup.model.restore import Restore, parse_restore, restore_marker

DRILL_LABEL = "vmbackup-drill"  # on every VM and disk a drill creates: the policy's drill marker
DRILLS_PREFIX = "data/vmbackup/drills"
DrillResult = Literal["Succeeded", "Failed"]
DRILL_RESULTS: tuple[DrillResult, ...] = ("Succeeded", "Failed")


SHARED_DRILL_DAG_ID = "vmbackup_drill"  # shipped once with the plugins; each run's conf is a signed policy


def drill_dag_id_for(namespace: str, name: str) -> str:
    """The policy's own drill DAG, as earlier versions rendered it (its file is deleted once no run is active)."""
    return f"vmdrill__{namespace}__{name}"


def drill_run_prefix(namespace: str, name: str) -> str:
    """What every run id of the policy's drills in the shared drill DAG starts with (Kubernetes names hold no
    underscore, so no other policy's prefix can start with it): how the controller finds a drill in flight."""
    return f"{drill_dag_id_for(namespace, name)}__"


def scheduled_drill_run_id(namespace: str, name: str, slot: datetime) -> str:
    """The one run of a scheduled slot: a second trigger (another controller, a retry) is Airflow's 409."""
    return f"{drill_run_prefix(namespace, name)}scheduled-{slot.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def requested_drill_run_id(namespace: str, name: str, request: str) -> str:
    """The one run of an on-demand request (`request`: a digest of the request, a DNS-safe token)."""
    return f"{drill_run_prefix(namespace, name)}requested-{request}"


def drill_name(policy_name: str) -> str:
    """The drill's Restore name (a DNS label): its marker labels what the policy's drills create."""
    return f"{policy_name[:50].rstrip('-')}-drill"


def drill_marker(namespace: str, policy_name: str) -> str:
    return restore_marker(namespace, drill_name(policy_name))


def drill_instance_name(namespace: str, policy_name: str, run_id: str) -> str:
    """One throwaway VM per drill run; deterministic, so a retried task adopts the VM it created."""
    digest = hashlib.sha256(f"{namespace}/{policy_name}/{run_id}".encode()).hexdigest()[:10]
    return f"vmdrill-{digest}"


def drill_restore(policy: BackupPolicy, run_id: str) -> Restore:
    """The restore a drill performs; PolicyError names the spec.verification field to fix."""
    verification = policy.spec.verification
    if verification is None:
        raise PolicyError([("spec.verification", "not set: this policy asks for no restore drills")])
    nic: dict[str, Any] = {"network": verification.network, "externalIp": False}
    if verification.subnetwork:
        nic["subnetwork"] = verification.subnetwork
    overrides: dict[str, Any] = {"networkInterfaces": [nic], "networkTags": list(verification.network_tags)}
    overrides["labels"] = {}
    if verification.machine_type:
        overrides["machineType"] = verification.machine_type
    spec: dict[str, Any] = {
        "policyName": policy.name,
        "targetName": drill_instance_name(policy.namespace, policy.name, run_id),
        "overrides": overrides,
        "timeouts": {
            "disksSeconds": verification.boot_timeout_seconds,
            "instanceSeconds": verification.boot_timeout_seconds,
        },
    }
    if verification.instance:
        spec["instance"] = verification.instance
    if verification.zone:
        spec["zone"] = verification.zone
    try:
        return parse_restore(policy.namespace, drill_name(policy.name), spec, policy)
    except PolicyError as exc:
        raise PolicyError([(_drill_field(f), m) for f, m in exc.problems]) from None


def drill_problem(message: str) -> str:
    """A restore plan's refusal as the policy's user reads it: the drill's machine type is spec.verification's."""
    return message.replace("spec.overrides.machineType", "spec.verification.machineType")


def _drill_field(field: str) -> str:
    """A restore field as the policy's user sets it: spec.instance -> spec.verification.instance."""
    for restore_field, policy_field in (
        ("spec.instance", "spec.verification.instance"),
        ("spec.zone", "spec.verification.zone"),
        ("spec.overrides.machineType", "spec.verification.machineType"),
        ("spec.overrides.networkTags", "spec.verification.networkTags"),
        ("spec.overrides.networkInterfaces", "spec.verification.network"),
    ):
        if field.startswith(restore_field):
            return policy_field
    return field


# -- the drill report ------------------------------------------------------------------------------------------


class DrillReport(ReportModel):
    """One drill's outcome, written by the drill DAG's last task; the controller fills status.verification."""

    namespace: str
    name: str  # the policy
    dag_id: str
    run_id: str
    result: DrillResult
    source_instance: str | None = None
    zone: str | None = None
    drill_instance: str | None = None
    snapshot_run: str | None = None
    snapshots: list[str] = Field(default_factory=list)
    boot_seconds: float | None = None  # instances.insert requested -> RUNNING
    guest_check: str | None = None  # what the serial port check found, when the policy asks for one
    message: str = ""
    failed_step: str | None = None
    deleted: list[str] = Field(default_factory=list)  # what the drill created and deleted again
    left_over: list[str] = Field(default_factory=list)  # what it could not delete (the message says why)
    started_at: datetime | None = None
    finished_at: datetime | None = None


def drill_report_object_name(namespace: str, name: str) -> str:
    return f"{DRILLS_PREFIX}/{namespace}/{name}/latest.json"
