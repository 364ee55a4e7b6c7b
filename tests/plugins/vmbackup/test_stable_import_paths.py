"""Import paths that outlive a release: DAG files already in a bucket and trigger rows in Airflow's database.

A rendered DAG file imports what its template imports; a deferred task's trigger row names its class by path,
and the triggerer imports that path to resume it. Both must keep resolving after the package is reorganised.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.tools import REPO_ROOT
from vmbackup.compute.hook import ComputeEngineHook

pytestmark = pytest.mark.airflow

TEMPLATES = sorted((REPO_ROOT / "dags_templates").glob("*.py.tmpl"))
# Class paths earlier releases serialized deferred triggers under.
EARLIER_TRIGGER_PATHS = ["vmbackup.triggers.OperationStatusTrigger", "vmbackup.triggers.SnapshotStatusTrigger"]


def import_string(path: str) -> Any:
    """What the triggerer resolves a trigger row's class path with, on either Airflow line."""
    try:
        from airflow._shared.module_loading import import_string as triggerer_import  # Airflow 3
    except ImportError:
        from airflow.utils.module_loading import import_string as triggerer_import  # Airflow 2.10
    return triggerer_import(path)


def template_imports(template: Path) -> list[tuple[str, str]]:
    tree = ast.parse(template.read_text(encoding="utf-8"))
    return [
        (node.module or "", alias.name)
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    ]


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_every_name_a_dag_template_imports_resolves(template: Path) -> None:
    import importlib

    imported = template_imports(template)
    assert imported, f"{template.name} imports nothing from vmbackup"
    for module, name in imported:
        assert callable(getattr(importlib.import_module(module), name)), f"{module}.{name}"


def test_rendered_dags_keep_their_entry_points() -> None:
    from vmbackup.backup.dag import build_dag
    from vmbackup.factory import build_dag as old_build_dag
    from vmbackup.restore.dag import build_restore_dag
    from vmbackup.restore_factory import build_restore_dag as old_build_restore_dag

    assert old_build_dag is build_dag
    assert old_build_restore_dag is build_restore_dag


@pytest.mark.parametrize("path", EARLIER_TRIGGER_PATHS)
def test_trigger_paths_of_earlier_releases_load_the_current_triggers(path: str) -> None:
    from vmbackup.compute import triggers

    trigger_class = import_string(path)
    assert trigger_class is getattr(triggers, path.rsplit(".", 1)[1])


async def test_a_trigger_deferred_under_an_earlier_path_resumes(gce_sim: Any) -> None:
    ref = ComputeEngineHook(endpoint=gce_sim.base_url).stop_instance("demo-project", "us-central1-c", "wordpress-1-vm")
    row_kwargs = {"operation": dict(ref), "endpoint": gce_sim.base_url, "long_poll_seconds": 60.0}
    trigger = import_string("vmbackup.triggers.OperationStatusTrigger")(**row_kwargs)
    async for event in trigger.run():
        assert event.payload == {"status": "done", "operation_ref": dict(ref), "error": None}
        return
    raise AssertionError("the trigger ended without an event")
