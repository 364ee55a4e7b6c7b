"""The Airflow side's settings: knobs of the Airflow installation (not of a policy), read from its environment.

This is the one place that reads them. A DAG factory reads them once per DAG parse and hands the object to
the tasks it builds; code that runs inside a task (the Compute Engine hook, the report upload) reads them when
the task runs. Composer sets GCS_BUCKET on its workers; the VMBACKUP_* variables are ours
(docs/operations/airflow-settings.md, "Airflow tuning variables").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

POKE_INTERVAL_ENV = "VMBACKUP_POKE_INTERVAL_SECONDS"
VM_DOWN_POKE_ENV = "VMBACKUP_VM_DOWN_POKE_SECONDS"
RETRY_DELAY_ENV = "VMBACKUP_RETRY_DELAY_SECONDS"
RETRIES_ENV = "VMBACKUP_TASK_RETRIES"
COMPUTE_ENDPOINT_ENV = "VMBACKUP_COMPUTE_ENDPOINT"
COMPUTE_RETRY_ATTEMPTS_ENV = "VMBACKUP_RETRY_ATTEMPTS"
COMPUTE_RETRY_BASE_ENV = "VMBACKUP_RETRY_BASE_SECONDS"
BUCKET_ENV = "GCS_BUCKET"
VMS_IN_FLIGHT_ENV = "VMBACKUP_MAX_VMS_IN_FLIGHT_PER_PROJECT"
QUOTA_WINDOW_ENV = "VMBACKUP_QUOTA_WINDOW_SECONDS"
QUOTA_DEADLINE_ENV = "VMBACKUP_QUOTA_DEADLINE_SECONDS"
RATE_BUDGET_BUCKET_ENV = "VMBACKUP_RATE_BUDGET_BUCKET"
RATE_BUDGETS_ENV = "VMBACKUP_RATE_BUDGETS"
MAX_ACTIVE_RESTORES_ENV = "VMBACKUP_MAX_ACTIVE_RESTORES"
DEFAULT_MAX_MAP_LENGTH = 1024  # Airflow's own default of [core] max_map_length


class SettingsError(ValueError):
    """A variable holds a value the Airflow side cannot use; the message names it and the fix."""


@dataclass(frozen=True)
class AirflowSettings:
    poke_interval_seconds: float = 30.0  # sensors' default look interval
    vm_down_poke_seconds: float = 5.0  # looks of the waits a stopped VM sits on (capped by the poke interval)
    retry_delay_seconds: float = 60.0  # Airflow's retry_delay of every task
    task_retries: int = 2
    compute_endpoint: str | None = None  # None: Compute Engine itself; http:// (the simulator): anonymous
    compute_retry_attempts: int = 6  # attempts of one Compute Engine call on 429, 5xx and connection errors
    compute_retry_base_seconds: float = 1.0  # first backoff of those retries (doubling, capped, full jitter)
    report_bucket: str | None = None  # where run and restore reports go; None: not uploaded
    max_active_restores: int = 16  # runs of each shared restore DAG at once (Airflow's own default per DAG)
    # VMs of one project whose down window does Compute Engine work at once in one process
    # (docs/design/down-window.md, "Concurrent Compute Engine work per project")
    max_vms_in_flight_per_project: int = 20
    # Compute Engine's rate-quota interval: quotas refill on the clock's minute ("Compute Engine rate quotas",
    # https://cloud.google.com/compute/api-quota); a test shrinks it with the simulator's scaled minute
    quota_window_seconds: float = 60.0
    # how long a call refused for a quota (403 rateLimitExceeded) or a busy resource (400 resourceNotReady) is
    # waited out, window after window, before its failure is the task's
    quota_deadline_seconds: float = 300.0
    # where the processes of one environment share the rate budget (compute/rate_budget.py): the Composer bucket
    # (GCS_BUCKET) unless VMBACKUP_RATE_BUDGET_BUCKET names another, or "none" (each process paces itself alone)
    rate_budget_bucket: str | None = None
    # per-minute budgets per quota group overriding Google's defaults (compute/rate_budget.py, DEFAULT_BUDGETS), as
    # VMBACKUP_RATE_BUDGETS="read_requests=1200,zonal_write_requests=600"
    rate_budgets: tuple[tuple[str, int], ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AirflowSettings:
        env = os.environ if environ is None else environ
        default = cls()
        return cls(
            poke_interval_seconds=_number(env, POKE_INTERVAL_ENV, default.poke_interval_seconds),
            vm_down_poke_seconds=_number(env, VM_DOWN_POKE_ENV, default.vm_down_poke_seconds),
            retry_delay_seconds=_number(env, RETRY_DELAY_ENV, default.retry_delay_seconds),
            task_retries=int(_number(env, RETRIES_ENV, default.task_retries, whole=True)),
            compute_endpoint=env.get(COMPUTE_ENDPOINT_ENV) or None,
            compute_retry_attempts=int(
                _number(env, COMPUTE_RETRY_ATTEMPTS_ENV, default.compute_retry_attempts, whole=True, minimum=1)
            ),
            compute_retry_base_seconds=_number(env, COMPUTE_RETRY_BASE_ENV, default.compute_retry_base_seconds),
            report_bucket=env.get(BUCKET_ENV) or None,
            max_active_restores=int(
                _number(env, MAX_ACTIVE_RESTORES_ENV, default.max_active_restores, whole=True, minimum=1)
            ),
            max_vms_in_flight_per_project=int(
                _number(env, VMS_IN_FLIGHT_ENV, default.max_vms_in_flight_per_project, whole=True, minimum=1)
            ),
            quota_window_seconds=_number(env, QUOTA_WINDOW_ENV, default.quota_window_seconds, minimum=0.01),
            quota_deadline_seconds=_number(env, QUOTA_DEADLINE_ENV, default.quota_deadline_seconds),
            rate_budget_bucket=_budget_bucket(env),
            rate_budgets=_budgets(env.get(RATE_BUDGETS_ENV, "")),
        )

    def task_defaults(self) -> dict[str, Any]:
        """default_args of every task of our DAGs (policy and restore alike)."""
        return {
            "owner": "vmbackup-operator",
            "retries": self.task_retries,
            "retry_delay": timedelta(seconds=self.retry_delay_seconds),
        }


def max_map_length() -> int:
    """Airflow's [core] max_map_length, read when a task runs: a mapped task expands to at most this many instances
    (AIRFLOW__CORE__MAX_MAP_LENGTH sets it, as every Airflow option)."""
    from airflow.configuration import conf

    return max(1, conf.getint("core", "max_map_length", fallback=DEFAULT_MAX_MAP_LENGTH))


def _budget_bucket(env: Mapping[str, str]) -> str | None:
    named = env.get(RATE_BUDGET_BUCKET_ENV, "").strip()
    if named.lower() == "none":
        return None
    return named or env.get(BUCKET_ENV) or None


def _budgets(text: str) -> tuple[tuple[str, int], ...]:
    """group=N pairs, comma-separated; N a whole number of calls per quota window, at least 1."""
    pairs: list[tuple[str, int]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        group, _, number = part.partition("=")
        if not group.strip() or not number.strip().isdigit() or int(number) < 1:
            raise SettingsError(
                f"{RATE_BUDGETS_ENV}: {part!r} is not group=N with N >= 1 (e.g. read_requests=1200); fix or unset it"
            )
        pairs.append((group.strip(), int(number)))
    return tuple(pairs)


def _number(env: Mapping[str, str], name: str, default: float, *, whole: bool = False, minimum: float = 0) -> float:
    text = env.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        kind = "a whole number" if whole else "a number of seconds"
        raise SettingsError(f"{name}={text!r} is not {kind} >= {minimum:g}; set it so, or unset it for {default:g}")
    return value
