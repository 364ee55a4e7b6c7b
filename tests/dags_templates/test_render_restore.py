"""render_restore_dag: the restore DAG file is the fixed template with the restore as one inert string literal."""

from __future__ import annotations

import ast

import pytest

from dags_templates.render_restore import RenderError, render_restore_dag, template_text, verify_rendered
from vmbackup.model.policy import parse_policy
from vmbackup.model.restore import Restore, parse_restore

POLICY = parse_policy(
    "shop", "db", {"project": "demo-project", "instances": [{"name": "db-1", "zone": "us-central1-a"}]}
)


def a_restore(**spec: object) -> Restore:
    return parse_restore("shop", "db-back", {"policyName": "db", **spec}, POLICY)


def _literal_of(source: str) -> str:
    tree = ast.parse(source)
    (assign,) = [n for n in tree.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "RESTORE_JSON"]
    value = ast.literal_eval(assign.value)
    assert isinstance(value, str)
    return value


def test_rendered_file_embeds_the_canonical_restore_json() -> None:
    assert _literal_of(render_restore_dag(a_restore())) == a_restore().to_json()


def test_rendering_is_deterministic() -> None:
    assert render_restore_dag(a_restore()) == render_restore_dag(a_restore())


def test_rendered_file_differs_from_the_template_only_in_the_restore_literal() -> None:
    template_lines = template_text().splitlines()
    changed = [line for line in render_restore_dag(a_restore()).splitlines() if line not in template_lines]
    assert len(changed) == 1
    assert changed[0].startswith("RESTORE_JSON = '")


def test_rendered_file_carries_no_restore_value_outside_the_literal() -> None:
    restore = a_restore(targetName="db-again")
    outside = render_restore_dag(restore).replace(repr(restore.to_json()), "")
    assert "db-again" not in outside
    assert "demo-project" not in outside


def test_verification_rejects_extra_code() -> None:
    restore = a_restore()
    with pytest.raises(RenderError, match="differs from the template"):
        verify_rendered(render_restore_dag(restore) + "\nimport os\n", restore.to_json())


def test_verification_rejects_a_literal_that_is_not_the_restore() -> None:
    with pytest.raises(RenderError):
        verify_rendered(render_restore_dag(a_restore()), a_restore(targetName="other").to_json())
