"""A task that carries its policy as JSON parses it once: the first use of ``policy`` parses, later uses reuse it.

Every backup, prune, report and drill step (and the down window's trigger) is built with the policy's JSON
(``policy_json``, as the rendered DAG passes it) and reads the validated model from it; before, each method parsed
it again. ``policy_json`` is no template field of any of them, so it never changes after the parse.
"""

from __future__ import annotations

from functools import cached_property

from vmbackup.model.policy import BackupPolicy


class PolicyTask:
    """Mixin for the operators, sensors and triggers built with ``policy_json``: ``policy`` is parsed once per task
    instance (an Airflow task try builds its operator anew, so a try never reads a parse of another)."""

    policy_json: str

    @cached_property
    def policy(self) -> BackupPolicy:
        return BackupPolicy.from_json(self.policy_json)
