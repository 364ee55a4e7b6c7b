"""Renders a policy's restore-drill DAG file with the same DataTemplate discipline as its backup DAG (render.py)."""

from __future__ import annotations

from pathlib import Path

from dags_templates.render import DataTemplate
from vmbackup.model.policy import BackupPolicy

DRILL_TEMPLATE = DataTemplate(
    path=Path(__file__).with_name("vmdrill_dag.py.tmpl"),
    placeholder="__VMBACKUP_DRILL_POLICY_JSON__",
    variable="POLICY_JSON",
    what="policy",
)


def render_drill_dag(policy: BackupPolicy) -> str:
    """The drill DAG file of a validated policy with spec.verification; pure (same policy, same bytes)."""
    if policy.spec.verification is None:
        raise ValueError("the policy has no spec.verification")
    return DRILL_TEMPLATE.render(policy.to_json())
