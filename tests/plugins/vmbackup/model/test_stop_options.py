"""spec.stop: the stop-mode switches for Local SSD and reservations, their defaults and how misuse is explained."""

import pytest

from vmbackup.model.policy import BackupPolicy, PolicyError, parse_policy

WORDPRESS = {"project": "my-project-1", "instances": [{"name": "wordpress-1-vm", "zone": "us-central1-c"}]}


def errors_of(spec: dict) -> dict[str, str]:
    with pytest.raises(PolicyError) as info:
        parse_policy("default", "wordpress", spec)
    return dict(info.value.problems)


def test_a_policy_neither_discards_local_ssd_nor_requires_a_reservation_by_default():
    stop = parse_policy("default", "wordpress", WORDPRESS).spec.stop
    assert (stop.discard_local_ssd, stop.require_reservation) == (False, False)


def test_the_switches_are_read_from_their_crd_names():
    spec = {**WORDPRESS, "stop": {"discardLocalSsd": True, "requireReservation": True}}
    stop = parse_policy("default", "wordpress", spec).spec.stop
    assert (stop.discard_local_ssd, stop.require_reservation) == (True, True)


def test_the_switches_survive_the_dag_json():
    policy = parse_policy("default", "wordpress", {**WORDPRESS, "stop": {"discardLocalSsd": True}})
    assert BackupPolicy.from_json(policy.to_json()).spec.stop.discard_local_ssd is True


@pytest.mark.parametrize("consistency", ["none", "guestFlush"])
def test_a_switch_without_stop_mode_is_refused_naming_the_field_and_the_fix(consistency: str):
    message = errors_of({**WORDPRESS, "consistency": consistency, "stop": {"requireReservation": True}})["spec.stop"]
    assert "consistency stop" in message
    assert "set them to false" in message


def test_a_quoted_boolean_is_refused_as_the_api_server_refuses_it():
    assert "spec.stop.discardLocalSsd" in errors_of({**WORDPRESS, "stop": {"discardLocalSsd": "yes"}})
