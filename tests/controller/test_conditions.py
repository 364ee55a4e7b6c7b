"""Conditions keep their transition time unless their status flips; an unchanged status is not patched."""

from datetime import UTC, datetime, timedelta

from controller.airflow_api import ImportErrorInfo
from controller.airflow_link import observation_of
from controller.conditions import READY, Condition, changed_fields, find_condition, merge_conditions
from controller.run_status import PolicyRunStatus
from controller.status import PolicyState, RunFields, RunObservation, desired_status

T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_a_new_condition_starts_its_transition_now() -> None:
    merged = merge_conditions([], [Condition(READY, "True", "DagLoaded")], generation=3, now=T0)
    assert merged == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "DagLoaded",
            "message": "",
            "lastTransitionTime": "2026-11-25T02:00:00Z",
            "observedGeneration": 3,
        }
    ]


def test_same_status_keeps_the_transition_time_even_if_the_reason_changes() -> None:
    first = merge_conditions([], [Condition(READY, "False", "WaitingForAirflow")], generation=1, now=T0)
    again = merge_conditions(first, [Condition(READY, "False", "DagImportError", "boom")], generation=1, now=T1)
    assert again[0]["lastTransitionTime"] == "2026-11-25T02:00:00Z"
    assert again[0]["reason"] == "DagImportError"


def test_a_flipped_status_moves_the_transition_time() -> None:
    first = merge_conditions([], [Condition(READY, "False", "WaitingForAirflow")], generation=1, now=T0)
    flipped = merge_conditions(first, [Condition(READY, "True", "DagLoaded")], generation=1, now=T1)
    assert flipped[0]["lastTransitionTime"] == "2026-11-25T02:05:00Z"


def test_conditions_not_mentioned_are_kept_in_contract_order() -> None:
    existing = [
        {"type": "AirflowReachable", "status": "True", "reason": "Ok", "message": "", "lastTransitionTime": "x"}
    ]
    merged = merge_conditions(existing, [Condition(READY, "True", "DagLoaded")], generation=1, now=T0)
    assert [c["type"] for c in merged] == ["Ready", "AirflowReachable"]


def test_only_differing_fields_are_patched() -> None:
    assert changed_fields({"result": "Pending", "dagId": "d"}, {"result": "Pending", "dagId": "d"}) == {}
    assert changed_fields({"result": "Pending"}, {"result": "Succeeded"}) == {"result": "Succeeded"}


def test_recomputing_an_unchanged_status_changes_nothing() -> None:
    state = PolicyState("shop", "web", "vmbackup__shop__web", generation=2, outcome="Uploaded", dag_hash="sha256:1")
    seen = RunObservation(reachable=True, run=RunFields("Succeeded"), dag_loaded=True)
    status = desired_status(state, seen, None, T0).to_status()
    assert changed_fields(status, desired_status(state, seen, status, T1).to_status()) == {}


def test_an_invalid_spec_says_invalid_whatever_airflow_reports() -> None:
    state = PolicyState(
        "shop", "web", "vmbackup__shop__web", outcome="Invalid", reason="InvalidSpec", message="spec.x: bad"
    )
    status = desired_status(state, RunObservation(reachable=True, run=RunFields("Succeeded")), None, T0).to_status()
    assert status["result"] == "Invalid"
    ready = find_condition(status["conditions"], READY)
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")


def test_unreachable_airflow_keeps_the_last_run_result_and_says_why() -> None:
    state = PolicyState("shop", "web", "vmbackup__shop__web", outcome="Uploaded")
    unreachable = observation_of(
        PolicyRunStatus("shop", "web", "vmbackup__shop__web", unreachable="connection refused")
    )
    status = desired_status(state, unreachable, {"result": "Succeeded"}, T0).to_status()
    assert status["result"] == "Succeeded"
    reachable = find_condition(status["conditions"], "AirflowReachable")
    assert reachable is not None
    assert reachable["status"] == "False"
    assert "connection refused" in reachable["message"]


def test_an_import_error_makes_the_policy_not_ready() -> None:
    state = PolicyState("shop", "web", "vmbackup__shop__web", outcome="Uploaded")
    error = ImportErrorInfo(filename="vmbackup__shop__web.py", stack_trace="SyntaxError", timestamp=T0)
    broken = observation_of(PolicyRunStatus("shop", "web", "vmbackup__shop__web", import_error=error))
    status = desired_status(state, broken, None, T0).to_status()
    ready = find_condition(status["conditions"], READY)
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "DagImportError")
    import_error = find_condition(status["conditions"], "DagImportError")
    assert import_error is not None
    assert import_error["status"] == "True"


def test_suspended_policies_say_suspended() -> None:
    state = PolicyState("shop", "web", "vmbackup__shop__web", outcome="Uploaded", suspend=True)
    status = desired_status(state, RunObservation(reachable=True, run=RunFields("Succeeded")), None, T0).to_status()
    assert status["result"] == "Suspended"
    suspended = find_condition(status["conditions"], "Suspended")
    assert suspended is not None
    assert suspended["status"] == "True"


def test_suspended_has_one_source_airflows_answer_when_it_has_one() -> None:
    state = PolicyState("shop", "web", "vmbackup__shop__web", outcome="Uploaded", suspend=True)
    active = RunObservation(reachable=True, run=RunFields("Succeeded"), dag_loaded=True, dag_paused=False)
    suspended = [
        c for c in desired_status(state, active, None, T0).to_status()["conditions"] if c["type"] == "Suspended"
    ]
    assert [(c["status"], c["reason"]) for c in suspended] == [("False", "DagActive")]
