"""Each VM's recovery point against the policy's objective (spec.rpo): the age of its newest good backup.

**A good backup of a VM** is a run whose report lists the VM with every disk's snapshot READY, at least one disk,
and no error or skip for the VM (the run as a whole may have failed for another VM). **Its time** is the moment
the data was cut, taken conservatively: the VM's stop time in stop mode, else the run's start (a snapshot is cut
after the run starts, so the age shown is never younger than the truth). The controller learns of runs from the
latest finished run's report at each poll (controller/run_status.py) and keeps, per VM, the newest such time; the
status carries it, so a restarted controller reads it back (``observe`` seeds from the status it finds).

**Which VMs:** those spec.instances names; for a selector, those its latest run reported. A VM with no good
backup yet is Pending while the policy is younger than its objective, then Breached. The policy is Breached when
one VM is, Pending when none is breached but one is pending (or none is known yet), else Met.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from controller.conditions import RPO_MET, Condition, rfc3339
from vmbackup.model.policy import BackupPolicy
from vmbackup.model.report import InstanceResult, RunReport
from vmbackup.model.rpo import parse_duration

Compliance = Literal["Met", "Breached", "Pending"]
VmKey = tuple[str, str]  # (zone, instance)


def good_backup_time(report: RunReport, vm: InstanceResult) -> datetime | None:
    """When this run cut a complete, READY backup of the VM (conservatively early); None if it did not."""
    if vm.error or vm.skipped_reason or not vm.disks or any(d.state != "READY" for d in vm.disks):
        return None
    return vm.stopped_at or report.started_at or report.finished_at


@dataclasses.dataclass
class RecoveryPoints:
    """The controller's memory of each VM's newest good backup (zone, instance) -> (time, run id)."""

    newest: dict[VmKey, tuple[datetime, str]] = dataclasses.field(default_factory=dict)
    reported: frozenset[VmKey] | None = None  # the VMs the latest report listed (a selector's VMs)
    seen_run: str | None = None
    seeded: bool = False

    def observe(self, report: RunReport | None, current: Mapping[str, Any]) -> None:
        """Take a new report's good backups; the first time, what the status already says."""
        if not self.seeded:
            self.seeded = True
            self._seed(current.get("recoveryPoint") or {})
        if report is None or report.run_id == self.seen_run:
            return
        self.seen_run = report.run_id
        self.reported = frozenset((vm.zone, vm.instance) for vm in report.instances)
        for vm in report.instances:
            when = good_backup_time(report, vm)
            known = self.newest.get((vm.zone, vm.instance))
            if when is not None and (known is None or when > known[0]):
                self.newest[(vm.zone, vm.instance)] = (when, report.run_id)

    def _seed(self, shown: Mapping[str, Any]) -> None:
        for item in shown.get("instances") or []:
            when = _time(item.get("newestGoodBackup"))
            if when is not None:
                self.newest[(str(item.get("zone")), str(item.get("instance")))] = (when, str(item.get("run") or ""))
        if shown.get("instances"):
            self.reported = frozenset((str(i.get("zone")), str(i.get("instance"))) for i in shown["instances"])

    def vms(self, policy: BackupPolicy) -> list[VmKey]:
        if policy.spec.instances is not None:
            return sorted({(i.zone, i.name) for i in policy.spec.instances})
        return sorted(self.reported or ())


@dataclasses.dataclass(frozen=True)
class VmRecoveryPoint:
    zone: str
    instance: str
    newest_good_backup: datetime | None
    run: str | None
    compliance: Compliance
    age_seconds: float | None  # for the metric only: the status carries the time, which does not change each poll

    def to_status(self) -> dict[str, Any]:
        item: dict[str, Any] = {"instance": self.instance, "zone": self.zone, "compliance": self.compliance}
        if self.newest_good_backup is not None:
            item["newestGoodBackup"] = rfc3339(self.newest_good_backup)
            item["run"] = self.run
        return item


@dataclasses.dataclass(frozen=True)
class RecoveryPointStatus:
    """status.recoveryPoint, and the RecoveryPointObjectiveMet condition."""

    objective: str
    compliance: Compliance
    instances: tuple[VmRecoveryPoint, ...]

    def to_status(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "compliance": self.compliance,
            "instances": [vm.to_status() for vm in self.instances],
        }

    def condition(self) -> Condition:
        breached = [f"{vm.instance} ({vm.zone})" for vm in self.instances if vm.compliance == "Breached"]
        if breached:
            return Condition(
                RPO_MET,
                "False",
                "Breached",
                f"no good backup within {self.objective} of {', '.join(breached)}; see status.recoveryPoint",
            )
        if self.compliance == "Pending":
            return Condition(RPO_MET, "Unknown", "Pending", f"waiting for a first good backup within {self.objective}")
        return Condition(RPO_MET, "True", "Met", f"every VM has a good backup younger than {self.objective}")


def recovery_point_status(
    policy: BackupPolicy | None, points: RecoveryPoints, now: datetime
) -> RecoveryPointStatus | None:
    """Each VM's compliance at ``now``; None for a policy without spec.rpo."""
    if policy is None or policy.spec.rpo is None:
        return None
    objective = parse_duration(policy.spec.rpo)
    created = policy.created or now
    vms = []
    for zone, instance in points.vms(policy):
        newest = points.newest.get((zone, instance))
        when, run = newest if newest is not None else (None, None)
        vms.append(
            VmRecoveryPoint(zone, instance, when, run, _compliance(when, created, objective, now), _age(when, now))
        )
    states = {vm.compliance for vm in vms}
    if "Breached" in states or (not vms and now - created > objective):
        compliance: Compliance = "Breached"
    elif "Pending" in states or not vms:
        compliance = "Pending"
    else:
        compliance = "Met"
    return RecoveryPointStatus(policy.spec.rpo, compliance, tuple(vms))


def _compliance(when: datetime | None, created: datetime, objective: timedelta, now: datetime) -> Compliance:
    if when is None:
        return "Breached" if now - created > objective else "Pending"
    return "Breached" if now - when > objective else "Met"


def _age(when: datetime | None, now: datetime) -> float | None:
    return None if when is None else max(0.0, (now - when).total_seconds())


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def recovery_point_schema() -> dict[str, Any]:
    """status.recoveryPoint in the CRD (controller/crdgen.py)."""
    compliance = {"type": "string", "enum": ["Met", "Breached", "Pending"]}
    return {
        "type": "object",
        "description": "spec.rpo against each VM's newest good backup (a run that left every disk of the VM "
        "READY); Breached when one is older than the objective.",
        "properties": {
            "objective": {"type": "string", "description": "spec.rpo as evaluated."},
            "compliance": {**compliance, "description": "Met, Breached (a VM is past the objective) or Pending."},
            "instances": {
                "type": "array",
                "description": "Each VM of the policy (spec.instances, or those its selector's latest run reported).",
                "items": {
                    "type": "object",
                    "description": "One VM's newest good backup and its compliance.",
                    "properties": {
                        "instance": {"type": "string", "description": "Instance name."},
                        "zone": {"type": "string", "description": "Zone of the instance."},
                        "newestGoodBackup": {
                            "type": "string",
                            "format": "date-time",
                            "description": "When its newest good backup was cut (the stop, else the run's start).",
                        },
                        "run": {"type": "string", "description": "The run that took it."},
                        "compliance": {**compliance, "description": "This VM against the objective."},
                    },
                },
            },
        },
    }
