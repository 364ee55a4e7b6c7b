"""The shared policy model: what a valid policy is, and how a bad one is explained."""

import json

import pytest

from vmbackup.model.policy import BackupPolicy, PolicyError, cron_problem, dag_id_for, parse_policy

WORDPRESS = {
    "project": "my-project-1",
    "instances": [{"name": "wordpress-1-vm", "zone": "us-central1-c"}],
    "schedule": "0 2 * * *",
    "retention": {"count": 7},
}


def errors_of(spec: dict, name: str = "wordpress") -> dict[str, str]:
    with pytest.raises(PolicyError) as info:
        parse_policy("default", name, spec)
    return dict(info.value.problems)


def test_classic_policy_gets_safe_defaults():
    policy = parse_policy("default", "wordpress", WORDPRESS)
    assert policy.spec.consistency == "stop"
    assert policy.spec.timezone == "Etc/UTC"
    assert policy.spec.timeouts.stop_seconds == 600
    assert policy.spec.timeouts.lock_wait_seconds == 300
    assert policy.dag_id == dag_id_for("default", "wordpress") == "vmbackup__default__wordpress"


def test_snapshots_are_standard_unless_the_policy_asks_for_instant_ones():
    assert parse_policy("default", "wordpress", WORDPRESS).spec.snapshot.method == "standard"
    instant = parse_policy("default", "wordpress", {**WORDPRESS, "snapshot": {"method": "instant"}})
    assert instant.spec.snapshot.method == "instant"


def test_instant_snapshots_with_guest_flush_are_refused_naming_the_field_and_the_fix():
    spec = {**WORDPRESS, "consistency": "guestFlush", "snapshot": {"method": "instant"}}
    message = errors_of(spec)["spec.snapshot"]
    assert message.startswith("method instant cannot be used with consistency guestFlush")
    assert "Set snapshot.method to standard, or consistency to stop" in message


def test_json_round_trip_is_canonical():
    policy = parse_policy("default", "wordpress", WORDPRESS)
    text = policy.to_json()
    assert BackupPolicy.from_json(text) == policy
    assert text == BackupPolicy.from_json(text).to_json()
    assert json.loads(text)["spec"]["instances"][0]["name"] == "wordpress-1-vm"


def test_exactly_one_of_instances_or_selector():
    both = {**WORDPRESS, "selector": {"zones": ["us-central1-a"], "matchLabels": {"app": "web"}}}
    assert "exactly one of instances or selector" in errors_of(both)["spec"]
    neither = {k: v for k, v in WORDPRESS.items() if k != "instances"}
    assert "exactly one of instances or selector" in errors_of(neither)["spec"]


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("project", "Bad_Project", "spec.project"),
        ("schedule", "61 * * * *", "spec.schedule"),
        ("schedule", "@fortnightly", "spec.schedule"),
        ("timezone", "Mars/Olympus", "spec.timezone"),
        ("consistency", "freeze", "spec.consistency"),
        ("retention", {}, "spec.retention"),
        ("instances", [{"name": "web'); __import__('os')", "zone": "us-central1-c"}], "spec.instances[0].name"),
        ("instances", [{"name": "web", "zone": "us-central1-c\nx"}], "spec.instances[0].zone"),
        ("instances", [{"name": "w" * 64, "zone": "us-central1-c"}], "spec.instances[0].name"),
        ("snapshot", {"labels": {"vmbackup-policy": "x"}}, "spec.snapshot.labels"),
        ("snapshot", {"labels": {"team": "A B"}}, "spec.snapshot.labels.team"),
        ("timeouts", {"lockWaitSeconds": -1}, "spec.timeouts.lockWaitSeconds"),
        ("typo", 1, "spec.typo"),
    ],
)
def test_bad_field_is_named(field, value, path):
    assert path in errors_of({**WORDPRESS, field: value})


def test_long_policy_name_is_refused_with_the_fix():
    assert "metadata.name" in errors_of(WORDPRESS, name="p" * 64)


def test_tiers_must_cover_every_listed_instance():
    spec = {
        **WORDPRESS,
        "tiers": ["web", "app"],
        "instances": [
            {"name": "web-1", "zone": "us-central1-c", "tier": "web"},
            {"name": "app-1", "zone": "us-central1-c"},
        ],
    }
    assert "app-1 must name one of the tiers" in errors_of(spec)["spec"]


@pytest.mark.parametrize("schedule", ["@daily", "0 2 * * *", "*/15 1-5 * jan-mar mon-fri", "30 4 1,15 * 0"])
def test_valid_schedules(schedule):
    assert cron_problem(schedule) is None


@pytest.mark.parametrize(
    ("value", "size", "cap"), [(None, 3, 3), (1, 3, 1), (5, 3, 3), ("50%", 3, 1), ("10%", 3, 1), ("100%", 4, 4)]
)
def test_max_unavailable_caps_a_tier(value, size, cap):
    spec = WORDPRESS if value is None else {**WORDPRESS, "maxUnavailable": value}
    assert parse_policy("default", "wordpress", spec).spec.unavailable_cap(size) == cap


@pytest.mark.parametrize("value", [0, -1, "0%", "150%", "half", "2", 1.5])
def test_a_bad_max_unavailable_is_named_with_the_fix(value):
    problems = errors_of({**WORDPRESS, "maxUnavailable": value})
    (path,) = {p.split(".int")[0].split(".str")[0] for p in problems}
    assert path == "spec.maxUnavailable"
    assert any("percentage" in message or "valid" in message for message in problems.values())
