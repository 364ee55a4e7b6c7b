"""The keeper DAG file: the template with its configuration as one inert JSON string literal."""

from __future__ import annotations

import ast
import json

import pytest

from dags_templates.render_keeper import KEEPER_TEMPLATE, RenderError, keeper_config_json, render_keeper_dag

HOSTILE = [
    "x'); open('/tmp/pwned', 'w').close(); ('",
    'x"""); __import__("os").system("id"); ("""',
    "x\nimport os\nos.system('id')\n",
    "{{ config }}",
    "\\'; raise SystemExit; '" + "x" * 500,
    "projét-ü\u2028",
]


def config_literal(source: str) -> str:
    """The value assigned to CONFIG, read from the syntax tree (never executed)."""
    tree = ast.parse(source)
    (assign,) = [n for n in tree.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "CONFIG"]
    return str(ast.literal_eval(assign.value))


def test_the_config_is_json_with_sorted_unique_projects_and_the_schedule() -> None:
    source = render_keeper_dag(["b-prod", "a-prod", "b-prod"], "*/10 * * * *")

    assert json.loads(config_literal(source)) == {"projects": ["a-prod", "b-prod"], "schedule": "*/10 * * * *"}


def test_the_file_builds_the_dag_from_the_parsed_config() -> None:
    tree = ast.parse(render_keeper_dag(["a"], "*/10 * * * *"))

    imports = [ast.unparse(n) for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    calls = [ast.unparse(n.value) for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)]
    assert imports == ["import json", "from vmbackup.keeper.dag import build_keeper_dag"]
    assert calls == ["build_keeper_dag(json.loads(CONFIG))"]


def test_rendering_is_deterministic_whatever_the_order_of_projects() -> None:
    assert render_keeper_dag(["a", "b"], "0 * * * *") == render_keeper_dag(["b", "a"], "0 * * * *")


def test_a_new_project_changes_the_file() -> None:
    assert render_keeper_dag(["a"], "0 * * * *") != render_keeper_dag(["a", "b"], "0 * * * *")


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_projects_and_schedules_stay_one_string_literal(value: str) -> None:
    source = render_keeper_dag([value, "ok"], value)

    tree = ast.parse(source)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert names == {"json", "build_keeper_dag", "CONFIG", "dag"}
    assert json.loads(config_literal(source)) == {"projects": sorted([value, "ok"]), "schedule": value}
    assert source.isascii()
    KEEPER_TEMPLATE.verify(source, keeper_config_json([value, "ok"], value))


def test_verification_rejects_extra_code() -> None:
    config = keeper_config_json(["a"], "0 * * * *")
    tampered = render_keeper_dag(["a"], "0 * * * *") + "\nimport os\n"

    with pytest.raises(RenderError):
        KEEPER_TEMPLATE.verify(tampered, config)


def test_a_project_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(RenderError):
        render_keeper_dag([42], "0 * * * *")  # type: ignore[list-item]
