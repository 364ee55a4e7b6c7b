"""The shared drill DAG's file; and a policy's own drill DAG file, as earlier versions rendered it (render.py's
DataTemplate discipline), kept for tests and for files already in buckets."""

from __future__ import annotations

from pathlib import Path

from dags_templates.render import DataTemplate
from vmbackup.model.drill import SHARED_DRILL_DAG_ID
from vmbackup.model.policy import BackupPolicy

DRILL_TEMPLATE = DataTemplate(
    path=Path(__file__).with_name("vmdrill_dag.py.tmpl"),
    placeholder="__VMBACKUP_DRILL_POLICY_JSON__",
    variable="POLICY_JSON",
    what="policy",
)

SHARED_TEMPLATE = Path(__file__).with_name("vmdrill_shared_dag.py.tmpl")
SHARED_DRILL_DAG_FILE_ID = SHARED_DRILL_DAG_ID  # the bucket object dags/<id>.py holding the shared drill DAG


def shared_drill_dag_source() -> str:
    """The file of the shared drill DAG (no data in it: each run's policy is its signed conf)."""
    return SHARED_TEMPLATE.read_text(encoding="utf-8")


def render_drill_dag(policy: BackupPolicy) -> str:
    """A policy's own drill DAG file as earlier versions uploaded it; pure (same policy, same bytes)."""
    if policy.spec.verification is None:
        raise ValueError("the policy has no spec.verification")
    return DRILL_TEMPLATE.render(policy.to_json())
