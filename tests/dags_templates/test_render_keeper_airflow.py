"""The rendered keeper DAG in a real Airflow DagBag: it loads, and hostile projects never run as code.

The DAG factory (vmbackup.keeper.dag) is the vmlayer side of issue 23; until it is in the package these tests
are skipped, and once it is they prove the template and the factory agree on the contract.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from dags_templates.render_keeper import KEEPER_DAG_ID, render_keeper_dag

pytestmark = [
    pytest.mark.airflow,
    pytest.mark.skipif(
        importlib.util.find_spec("vmbackup.keeper") is None, reason="vmbackup.keeper (the keeper DAG) is not here yet"
    ),
]


def test_the_rendered_keeper_dag_loads(airflow_dags: Any) -> None:
    airflow_dags.write_dag(KEEPER_DAG_ID, render_keeper_dag(["shop-prod-1", "finance-prod"], "*/10 * * * *"))

    bag = airflow_dags.dagbag()

    assert not bag.import_errors
    assert KEEPER_DAG_ID in bag.dag_ids


def test_hostile_projects_never_run(airflow_dags: Any, tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    touch = f"open({str(marker)!r}, 'w').close()"
    hostile = [
        f"x'); {touch}; ('",
        f'x"""); {touch}; ("""',
        f"x\n{touch}\n",
        f"__import__('os').system('touch {marker}')",
    ]
    airflow_dags.write_dag(KEEPER_DAG_ID, render_keeper_dag(hostile, "*/10 * * * *"))

    airflow_dags.dagbag()

    assert not marker.exists()
