"""The one error a restore plan raises for the user to act on (kept apart so that the plan's helper modules can
raise it without importing the plan)."""

from __future__ import annotations


class RestoreProblemError(Exception):
    """The restore cannot proceed as specified; the message names what to change. Not retried."""
