"""Exit codes and the errors that carry them: a script branches on the code, a person reads one line."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1  # what was asked for ran and failed (a backup failed, a wait timed out)
    USAGE = 2  # bad flags or configuration
    NOT_FOUND = 3  # the policy, run, task or DAG does not exist
    UNREACHABLE = 4  # Kubernetes, Airflow or Compute Engine cannot be reached or refused our credentials


EXIT_CODES_HELP = """\
exit codes:
  0  success
  1  the thing asked for failed (e.g. the backup run failed, or --wait timed out)
  2  usage or configuration error
  3  not found (policy, run, task, DAG)
  4  a backend is unreachable or refused our credentials (Kubernetes, Airflow, Compute Engine)
"""


class CliError(Exception):
    """An error the user can act on: one line on stderr and an exit code."""

    code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Failed(CliError):  # noqa: N818 - reads as the outcome
    code = ExitCode.FAILED


class UsageError(CliError):
    code = ExitCode.USAGE


class NotFound(CliError):  # noqa: N818 - reads as the outcome
    code = ExitCode.NOT_FOUND


class Unreachable(CliError):  # noqa: N818 - reads as the outcome
    code = ExitCode.UNREACHABLE
