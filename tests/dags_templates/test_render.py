"""render_dag: the DAG file is the fixed template with the policy as one inert string literal."""

from __future__ import annotations

import ast

import pytest

from dags_templates.render import RenderError, render_dag, template_text, verify_rendered
from vmbackup.model.policy import BackupPolicy, PolicyError, parse_policy

BASIC_SPEC = {
    "project": "demo-project",
    "instances": [{"name": "wordpress-1-vm", "zone": "us-central1-c"}],
    "schedule": "0 2 * * *",
    "timezone": "Europe/Paris",
}


def basic_policy(**spec_changes: object) -> BackupPolicy:
    return parse_policy("team-a", "wordpress", {**BASIC_SPEC, **spec_changes})


def _literal_of(source: str) -> str:
    tree = ast.parse(source)
    (assign,) = [n for n in tree.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "POLICY_JSON"]
    value = ast.literal_eval(assign.value)
    assert isinstance(value, str)
    return value


def test_rendered_file_embeds_the_canonical_policy_json() -> None:
    policy = basic_policy()
    assert _literal_of(render_dag(policy)) == policy.to_json()


def test_rendering_is_deterministic() -> None:
    assert render_dag(basic_policy()) == render_dag(basic_policy())


def test_rendered_file_differs_from_template_only_in_the_policy_literal() -> None:
    rendered = render_dag(basic_policy())
    template_lines = template_text().splitlines()
    changed = [line for line in rendered.splitlines() if line not in template_lines]
    assert len(changed) == 1
    assert changed[0].startswith("POLICY_JSON = '")


def test_rendered_file_carries_no_policy_value_outside_the_literal() -> None:
    rendered = render_dag(basic_policy())
    outside = rendered.replace(repr(basic_policy().to_json()), "")
    assert "wordpress" not in outside
    assert "demo-project" not in outside


def test_verification_rejects_extra_code() -> None:
    policy = basic_policy()
    tampered = render_dag(policy) + "\nimport os\n"
    with pytest.raises(RenderError, match="differs from the template"):
        verify_rendered(tampered, policy.to_json())


def test_verification_rejects_a_literal_that_is_not_the_policy() -> None:
    policy = basic_policy()
    other = basic_policy(schedule="0 3 * * *").to_json()
    with pytest.raises(RenderError):
        verify_rendered(render_dag(policy), other)


HOSTILE = [
    "x'; __import__('os').system('touch /tmp/pwned'); '",
    'x"""\nimport os\n"""',
    "a\nb",
    "__import__('os')",
    "{{ ti.xcom_push('x', 1) }}",
    "x" * 300,
    "é\u202e",
]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize(
    ("field", "spec_change"),
    [
        ("spec.project", lambda v: {"project": v}),
        ("spec.instances[0].name", lambda v: {"instances": [{"name": v, "zone": "us-central1-c"}]}),
        ("spec.instances[0].zone", lambda v: {"instances": [{"name": "vm-1", "zone": v}]}),
        ("spec.schedule", lambda v: {"schedule": v}),
        ("spec.timezone", lambda v: {"timezone": v}),
        ("spec.snapshot.labels", lambda v: {"snapshot": {"labels": {"team": v}}}),
        ("spec.snapshot.storageLocation", lambda v: {"snapshot": {"storageLocation": v}}),
        ("spec.snapshot.labels", lambda v: {"snapshot": {"labels": {v: "x"}}}),
        ("spec.instances[0].disks", lambda v: {"instances": [{"name": "vm-1", "zone": "us-central1-c", "disks": [v]}]}),
        ("spec.tiers", lambda v: {"tiers": [v]}),
        ("spec.selector.zones", lambda v: {"instances": None, "selector": {"zones": [v], "matchLabels": {"a": "b"}}}),
        (
            "spec.selector.matchLabels",
            lambda v: {"instances": None, "selector": {"zones": ["us-central1-a"], "matchLabels": {"app": v}}},
        ),
        (
            "spec.selector.tierLabel",
            lambda v: {
                "instances": None,
                "tiers": ["web"],
                "selector": {"zones": ["us-central1-a"], "matchLabels": {"a": "b"}, "tierLabel": v},
            },
        ),
        ("spec.composer.bucket", lambda v: {"composer": {"bucket": v, "airflowUri": "http://airflow:8080"}}),
        ("spec.composer.airflowUri", lambda v: {"composer": {"bucket": "my-bucket", "airflowUri": v}}),
        ("spec.composer.environment", lambda v: {"composer": {"environment": v}}),
    ],
)
def test_hostile_string_values_are_rejected_naming_the_field(value: str, field: str, spec_change: object) -> None:
    changed = {**BASIC_SPEC, **spec_change(value)}  # type: ignore[operator]
    with pytest.raises(PolicyError) as caught:
        parse_policy("team-a", "wordpress", {k: v for k, v in changed.items() if v is not None})
    assert any(f.startswith(field) for f in caught.value.fields), caught.value.problems
