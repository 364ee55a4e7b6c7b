"""A task that carries its policy parses it once: the first use of ``policy`` parses, later uses reuse it.

Every backup, prune, report and drill step (and the down window's trigger) reads the validated model from the
policy's JSON. Where the JSON comes from is pluggable: given when the task is built (``policy_json``, as a rendered
DAG passes it), or read from the run when the task executes (``policy_source``, e.g. the signed conf of a shared
drill DAG's run: vmbackup.drill.run_conf), so no step duplicates the parse. ``policy_json`` is no template field
of any of them, so it never changes after the parse.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from vmbackup.model.policy import BackupPolicy

PolicySource = Callable[[Any], str]  # the task's context -> the policy's canonical JSON (raises when refused)


class PolicyTask:
    """Mixin for the operators, sensors and triggers that read a policy: ``policy`` is parsed once per task
    instance (an Airflow task try builds its operator anew, so a try never reads a parse of another)."""

    policy_json: str | None
    policy_source: PolicySource | None = None

    def load_policy(self, context: Any) -> None:
        """Before the first use of ``policy`` in execute(): read the JSON from the run when the task was built
        without it (the source raises, failing the task, when the run carries no policy it accepts)."""
        if getattr(self, "policy_json", None) is None:
            if self.policy_source is None:
                raise ValueError(f"{type(self).__name__} was built with neither policy_json nor policy_source")
            self.policy_json = self.policy_source(context)

    @cached_property
    def policy(self) -> BackupPolicy:
        if self.policy_json is None:
            raise ValueError(f"{type(self).__name__}: the policy is read from the run in execute(), not before")
        return BackupPolicy.from_json(self.policy_json)
