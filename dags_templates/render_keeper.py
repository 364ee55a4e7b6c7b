"""Renders the keeper's DAG file (one per Composer environment) with the DataTemplate discipline of render.py.

The configuration, ``{"projects": [...], "schedule": "<cron>"}``, is canonical ASCII JSON in one string
literal; the template hands it to ``vmbackup.keeper.dag.build_keeper_dag``, which validates it.
"""

from __future__ import annotations

import json
from pathlib import Path

from dags_templates.render import DataTemplate, RenderError
from vmbackup.model.keeper_report import KEEPER_DAG_ID  # the bucket object dags/<id>.py and the Airflow DAG id

KEEPER_TEMPLATE = DataTemplate(
    path=Path(__file__).with_name("vmkeeper_dag.py.tmpl"),
    placeholder="__VMBACKUP_KEEPER_JSON__",
    variable="CONFIG",
    what="keeper",
)

__all__ = ["KEEPER_DAG_ID", "RenderError", "keeper_config_json", "render_keeper_dag"]


def keeper_config_json(projects: list[str], schedule: str) -> str:
    """The keeper's configuration as canonical JSON: projects sorted and unique, so one set renders one file."""
    if not all(isinstance(p, str) for p in projects) or not isinstance(schedule, str):
        raise RenderError("keeper projects and schedule must be strings")
    config = {"projects": sorted(set(projects)), "schedule": schedule}
    return json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def render_keeper_dag(projects: list[str], schedule: str) -> str:
    """The keeper DAG file for these projects and this schedule; pure (same input, same bytes)."""
    return KEEPER_TEMPLATE.render(keeper_config_json(projects, schedule))
