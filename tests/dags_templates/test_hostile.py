"""Hostile strings stay data: even a policy that skipped validation renders to an inert literal.

The model rejects these values (see tests/dags_templates/test_render.py); here validation is bypassed on purpose
(model_construct) to prove the second line of defence: render_dag embeds them as one string constant,
Airflow parses the file, the factory refuses the policy, and nothing in the value ever runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dags_templates.render import render_dag
from vmbackup.model.policy import BackupPolicy, InstanceRef, PolicySpec

pytestmark = pytest.mark.airflow


def payloads(marker: Path) -> list[str]:
    touch = f"open({str(marker)!r}, 'w').close()"
    return [
        f"x'); {touch}; ('",
        f'x"""); {touch}; ("""',
        f"x\n{touch}\n",
        f"__import__('os').system('touch {marker}')",
        "{{ " + touch + " }}",
        "\\'; " + touch + "; '" + "x" * 500,
    ]


def unvalidated_policy(name: str, value: str) -> BackupPolicy:
    spec = PolicySpec.model_construct(
        project=value,
        instances=[InstanceRef.model_construct(name=value, zone=value)],
        schedule="0 2 * * *",
    )
    return BackupPolicy.model_construct(namespace="team-a", name=name, generation=0, spec=spec)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "executed"


def test_hostile_values_render_as_one_inert_literal_and_never_run(airflow_dags: Any, marker: Path) -> None:
    for index, value in enumerate(payloads(marker)):
        policy = unvalidated_policy(f"hostile-{index}", value)
        airflow_dags.write_dag(policy.dag_id, render_dag(policy))
    bag = airflow_dags.dagbag()
    assert not marker.exists()
    assert len(bag.import_errors) == len(payloads(marker))
    assert all("validation error" in error.lower() for error in bag.import_errors.values())


def test_hostile_values_are_not_in_the_file_as_code(marker: Path) -> None:
    import ast

    for value in payloads(marker):
        source = render_dag(unvalidated_policy("hostile", value))
        names = {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
        assert names == {"build_dag", "POLICY_JSON", "dag"}
