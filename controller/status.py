"""What a policy's status should say, from what the controller did and what Airflow last reported.

Pure: the reconcile handler (spec -> bucket) and the status timer (Airflow -> status) both compute
the whole desired status here from the same in-memory PolicyState and the latest batched
observation, then patch only the fields that differ. Two writers computing from one source cannot
undo each other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from controller.conditions import READY, SUSPENDED, Condition, merge_conditions
from vmbackup.model.policy import WaitMode
from vmbackup.model.report import RunReport

PolicyKey = tuple[str, str]  # (namespace, name): how the controller keys everything it keeps per policy
SpecOutcome = Literal["Uploaded", "Invalid", "Refused", "Error"]

# Results the controller decides itself; any other result comes from Airflow's runs.
OWN_RESULTS = ("Invalid", "Refused", "Suspended")
RUN_FIELDS = ("lastSnapshotTime", "lastSnapshots", "lastRun", "nextRun", "lastScheduleTime", "lastMissedSlot")
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
    instances: frozenset[tuple[str, str, str]] = frozenset()  # (project, zone, name) named in spec.instances
    shared: str = ""  # which other policies of the namespace name the same VMs (said in the Ready message)


@dataclasses.dataclass(frozen=True)
class RunObservation:
    """One policy's share of a batched Airflow poll, in the controller's terms."""

    reachable: bool
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # result + RUN_FIELDS
    conditions: tuple[Condition, ...] = ()  # the ones Airflow decides, built by PolicyRunStatus.conditions
    dag_loaded: bool | None = None  # Airflow has parsed the DAG (None: cannot tell)
    dag_paused: bool | None = None  # the DAG is paused in Airflow (None: cannot tell)
    import_error: str | None = None
    unreachable_reason: str = ""
    report: RunReport | None = None  # the latest finished run's report, when it left one


def short(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


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
) -> dict[str, Any]:
    """The whole status the object should carry now (existing run fields are kept when Airflow is silent)."""
    current = current or {}
    conditions = [ready_condition(state, observation), suspended_condition(state, observation)]
    status: dict[str, Any] = {"observedGeneration": state.generation, "dagId": state.dag_id}
    if state.dag_hash is not None:
        status["dagHash"] = state.dag_hash
    if observation is not None:
        if observation.reachable:
            status.update({k: v for k, v in observation.fields.items() if k in RUN_FIELDS})  # None: remove
            status.update(_missed_count(observation.fields.get("lastMissedSlot"), current))
        conditions.extend(observation.conditions)
    status["result"] = _result(state, observation, current)
    status["conditions"] = merge_conditions(current.get("conditions"), conditions, generation=state.generation, now=now)
    return status


def _missed_count(missed: Any, current: Mapping[str, Any]) -> dict[str, int]:
    """missedSlots goes up once per missed slot, however many polls see it."""
    if not missed:
        return {}
    known = current.get("lastMissedSlot") or {}
    count = int(current.get("missedSlots") or 0)
    return {"missedSlots": count if known.get("time") == missed.get("time") else count + 1}


def _result(state: PolicyState, observation: RunObservation | None, current: Mapping[str, Any]) -> str:
    if state.outcome == "Invalid":
        return "Invalid"
    if state.outcome == "Refused":
        return "Refused"
    if state.suspend:
        return "Suspended"
    if observation is not None and observation.reachable:
        return str(observation.fields.get("result") or "Pending")
    previous = current.get("result")
    if previous and previous not in OWN_RESULTS:
        return str(previous)  # Airflow is silent: the last run's result is still the best we know
    return "Unknown" if observation is not None else "Pending"
