"""What a policy's status should say, from what the controller did and what Airflow last reported.

Pure: the reconcile handler (spec -> bucket) and the status timer (Airflow -> status) both compute
the whole desired status here from the same in-memory PolicyState and the latest batched
observation, then patch only the fields that differ. Two writers computing from one source cannot
undo each other.

The status is typed until it is written: :class:`RunFields` (what Airflow's runs say, built by
controller/run_status.py) inside :class:`PolicyStatus`, whose ``to_status()`` is the one place that spells
the contract's camelCase fields and RFC 3339 times.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

from controller.conditions import READY, RPO_MET, SUSPENDED, Condition, merge_conditions, rfc3339
from controller.recovery_point import RecoveryPoints, RecoveryPointStatus, recovery_point_status
from vmbackup.model.policy import BackupPolicy, WaitMode
from vmbackup.model.report import MissedSlot, RunReport

PolicyKey = tuple[str, str]  # (namespace, name): how the controller keys everything it keeps per policy
SpecOutcome = Literal["Uploaded", "Invalid", "Refused", "Error"]

# Results the controller decides itself; any other result comes from Airflow's runs.
OWN_RESULTS = ("Invalid", "Refused", "Suspended")
MAX_MESSAGE = 4000  # the CRD allows 32768; keep status objects small


@dataclasses.dataclass
class PolicyState:
    """What the controller last did for one policy (kept in memory; rebuilt on resume)."""

    namespace: str
    name: str
    dag_id: str
    generation: int = 0
    outcome: SpecOutcome = "Error"
    reason: str = "Reconciling"
    message: str = ""
    dag_hash: str | None = None
    suspend: bool = False
    target_key: tuple[str, str] | None = None  # (bucket, airflow url) once resolved
    paused_applied: bool | None = None  # what Airflow was last told; None: not yet
    wait_mode: WaitMode | None = None  # how the uploaded DAG's sensors wait; None: nothing uploaded yet
    announced_run: tuple[str, str] | None = None  # (runId, state) of the last run an Event was posted for
    policy: BackupPolicy | None = None  # the last valid spec (its DAG is kept while a newer spec is invalid)
    shared: str = ""  # which other policies of the namespace name the same VMs (said in the Ready message)
    recovery: RecoveryPoints = dataclasses.field(default_factory=RecoveryPoints)  # each VM's newest good backup

    @property
    def instances(self) -> frozenset[tuple[str, str, str]]:
        """(project, zone, name) of each VM spec.instances names (none for a selector)."""
        if self.policy is None:
            return frozenset()
        spec = self.policy.spec
        return frozenset((spec.project, i.zone, i.name) for i in spec.instances or ())


@dataclasses.dataclass(frozen=True)
class LastRun:
    """status.lastRun: the latest run Airflow knows of."""

    run_id: str
    state: str  # queued | running | success | failed
    start_time: datetime | None
    end_time: datetime | None
    duration_seconds: float | None
    failed_step: str | None  # for a failed run only
    message: str

    def to_status(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "state": self.state,
            "startTime": rfc3339(self.start_time),
            "endTime": rfc3339(self.end_time),
            "durationSeconds": self.duration_seconds,
            "failedStep": self.failed_step,
            "message": self.message,
        }


@dataclasses.dataclass(frozen=True)
class SnapshotsTaken:
    """status.lastSnapshotTime and status.lastSnapshots, after a run that backed up."""

    time: datetime | None
    snapshots: list[str] | None  # None: the run left no report, the names shown before are kept


@dataclasses.dataclass(frozen=True)
class RunFields:
    """What Airflow's runs decide of the status: the result they read as, and the run fields.

    The run fields: lastRun, nextRun, lastScheduleTime, lastMissedSlot, lastSnapshotTime, lastSnapshots.

    For the fields that are kept when a run says nothing about them, None means "keep"; lastRun and nextRun
    are always decided (None removes them).
    """

    result: str
    last_run: LastRun | None = None  # None: no run yet
    next_run: datetime | None = None  # None: paused, or nothing scheduled
    schedule_time: datetime | None = None  # the latest run's slot; None: a run asked for by hand, or no report
    missed_slot: MissedSlot | None = None  # the latest run succeeded without a backup: its slot was missed
    taken: SnapshotsTaken | None = None  # the latest run succeeded and backed up

    def to_status(self) -> dict[str, Any]:
        """The run fields as written: a None value removes the field, an absent one keeps it."""
        fields: dict[str, Any] = {
            "lastRun": self.last_run.to_status() if self.last_run is not None else None,
            "nextRun": rfc3339(self.next_run),
        }
        if self.schedule_time is not None:
            fields["lastScheduleTime"] = rfc3339(self.schedule_time)
        if self.missed_slot is not None:
            missed = self.missed_slot
            fields["lastMissedSlot"] = {
                "time": rfc3339(missed.slot),
                "reason": missed.reason,
                "message": missed.message,
            }
        if self.taken is not None:
            fields["lastSnapshotTime"] = rfc3339(self.taken.time)
            if self.taken.snapshots is not None:
                fields["lastSnapshots"] = self.taken.snapshots
        return fields


@dataclasses.dataclass(frozen=True)
class PolicyStatus:
    """The whole status a policy should carry now; ``to_status()`` is what is compared and patched."""

    observed_generation: int
    dag_id: str
    result: str
    conditions: list[dict[str, Any]]  # merged with the object's own (their lastTransitionTime), as written
    dag_hash: str | None = None  # None: nothing uploaded yet, the field is kept
    run: RunFields | None = None  # None: Airflow said nothing this time, the run fields are kept
    missed_slots: int | None = None  # None: no missed slot in view, the count is kept
    recovery: RecoveryPointStatus | None = None  # None: no spec.rpo, the field is removed

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {"observedGeneration": self.observed_generation, "dagId": self.dag_id}
        status["recoveryPoint"] = self.recovery.to_status() if self.recovery is not None else None
        if self.dag_hash is not None:
            status["dagHash"] = self.dag_hash
        if self.run is not None:
            status.update(self.run.to_status())  # None: remove
        if self.missed_slots is not None:
            status["missedSlots"] = self.missed_slots
        status["result"] = self.result
        status["conditions"] = self.conditions
        return status


@dataclasses.dataclass(frozen=True)
class RunObservation:
    """One policy's share of a batched Airflow poll, in the controller's terms."""

    reachable: bool
    run: RunFields | None = None  # what the runs say; None when Airflow could not be asked
    conditions: tuple[Condition, ...] = ()  # the ones Airflow decides, built by PolicyRunStatus.conditions
    dag_loaded: bool | None = None  # Airflow has parsed the DAG (None: cannot tell)
    dag_paused: bool | None = None  # the DAG is paused in Airflow (None: cannot tell)
    import_error: str | None = None
    unreachable_reason: str = ""
    report: RunReport | None = None  # the latest finished run's report, when it left one


def short(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


def shared_instances_note(state: PolicyState, states: Iterable[PolicyState]) -> str:
    """Other policies of the namespace that name one of this policy's VMs (explicit lists), said in Ready."""
    shared: dict[str, list[str]] = {}
    for other in states:
        if other is state or other.namespace != state.namespace:
            continue
        common = state.instances & other.instances
        if common:
            shared[other.name] = [f"{name} ({zone})" for _, zone, name in common]
    if not shared:
        return ""
    return "; " + "; ".join(
        f"policy {other} also names {', '.join(sorted(vms))}: their runs take turns (a VM another run holds is "
        "skipped and reported)"
        for other, vms in sorted(shared.items())
    )


def ready_condition(state: PolicyState, observation: RunObservation | None) -> Condition:
    """Ready = the spec is valid and allowed, the DAG is in the bucket, and Airflow loaded it cleanly.

    Its message also says which other policies of the namespace name the same VMs.
    """
    ready = _ready(state, observation)
    if state.outcome != "Uploaded" or not state.shared:
        return ready
    return dataclasses.replace(ready, message=short(ready.message + state.shared))


def _ready(state: PolicyState, observation: RunObservation | None) -> Condition:
    if state.outcome != "Uploaded":
        return Condition(READY, "False", state.reason, short(state.message))
    if observation is None:
        return Condition(READY, "Unknown", "WaitingForAirflow", "DAG uploaded; waiting for the first Airflow poll")
    if not observation.reachable:
        return Condition(
            READY,
            "Unknown",
            "AirflowUnreachable",
            short(f"DAG uploaded; cannot confirm it loaded: {observation.unreachable_reason}"),
        )
    if observation.import_error:
        return Condition(READY, "False", "DagImportError", short(observation.import_error))
    if observation.dag_loaded is False:
        return Condition(READY, "False", "WaitingForAirflow", "DAG uploaded; Airflow has not parsed it yet")
    return Condition(READY, "True", "DagLoaded", "DAG uploaded and loaded by Airflow")


def suspended_condition(state: PolicyState, observation: RunObservation | None) -> Condition:
    """Suspended = the DAG is paused: as Airflow says when it answered about the DAG, else as the spec asks."""
    paused = observation.dag_paused if observation is not None and observation.reachable else None
    if paused is True:
        return Condition(SUSPENDED, "True", "DagPaused", "the DAG is paused in Airflow")
    if paused is False:
        return Condition(SUSPENDED, "False", "DagActive", "the DAG is scheduled in Airflow")
    if state.suspend:
        return Condition(SUSPENDED, "True", "SuspendedBySpec", "spec.suspend is true: scheduled runs are paused")
    return Condition(SUSPENDED, "False", "Active", "scheduled runs are enabled")


def desired_status(
    state: PolicyState,
    observation: RunObservation | None,
    current: Mapping[str, Any] | None,
    now: datetime,
) -> PolicyStatus:
    """The whole status the object should carry now (existing run fields are kept when Airflow is silent)."""
    current = current or {}
    conditions = [ready_condition(state, observation), suspended_condition(state, observation)]
    run = observation.run if observation is not None and observation.reachable else None
    if observation is not None:
        conditions.extend(observation.conditions)
    recovery = recovery_point_status(state.policy, state.recovery, now)
    if recovery is not None:
        conditions.append(recovery.condition())
    merged = merge_conditions(current.get("conditions"), conditions, generation=state.generation, now=now)
    return PolicyStatus(
        observed_generation=state.generation,
        dag_id=state.dag_id,
        dag_hash=state.dag_hash,
        run=run,
        missed_slots=_missed_count(run.missed_slot, current) if run is not None else None,
        result=_result(state, observation, current),
        conditions=[c for c in merged if recovery is not None or c.get("type") != RPO_MET],  # rpo removed: gone
        recovery=recovery,
    )


def _missed_count(missed: MissedSlot | None, current: Mapping[str, Any]) -> int | None:
    """missedSlots goes up once per missed slot, however many polls see it."""
    if missed is None:
        return None
    known = current.get("lastMissedSlot") or {}
    count = int(current.get("missedSlots") or 0)
    return count if known.get("time") == rfc3339(missed.slot) else count + 1


def _result(state: PolicyState, observation: RunObservation | None, current: Mapping[str, Any]) -> str:
    if state.outcome == "Invalid":
        return "Invalid"
    if state.outcome == "Refused":
        return "Refused"
    if state.suspend:
        return "Suspended"
    if observation is not None and observation.reachable:
        return observation.run.result if observation.run is not None and observation.run.result else "Pending"
    previous = current.get("result")
    if previous and previous not in OWN_RESULTS:
        return str(previous)  # Airflow is silent: the last run's result is still the best we know
    return "Unknown" if observation is not None else "Pending"
