"""Prometheus metrics of the controller, on their own registry so tests and replicas stay independent."""

from __future__ import annotations

import contextlib
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from vmbackup.model.slots import MissReason


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.reconciles = Counter(
            "vmbackup_reconciles",
            "Policy reconciliations, by outcome (Ready, Invalid, Refused, Error).",
            ["result"],
            registry=self.registry,
        )
        self.uploads = Counter(
            "vmbackup_uploads",
            "Objects written to a Composer bucket (unchanged content is not written).",
            ["kind"],  # dag | plugin
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "vmbackup_reconcile_duration_seconds",
            "Time to validate, render and upload one policy.",
            registry=self.registry,
        )
        self.last_success = Gauge(
            "vmbackup_last_success_timestamp_seconds",
            "End time of the policy's last successful backup run (Unix time).",
            ["namespace", "name"],
            registry=self.registry,
        )
        self.failed_runs = Counter(
            "vmbackup_failed_runs",
            "Backup runs that ended in failure, counted once per run.",
            ["namespace", "name"],
            registry=self.registry,
        )
        self.missed_runs = Counter(
            "vmbackup_missed_runs",
            "Scheduled slots that touched no VM (late start, outside the maintenance window, or already backed up), "
            "counted once per slot.",
            ["namespace", "name", "reason"],
            registry=self.registry,
        )
        self.airflow_polls = Counter(
            "vmbackup_airflow_polls",
            "Batched Airflow status queries, by outcome (ok, unreachable).",
            ["outcome"],
            registry=self.registry,
        )

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A sample's current value (0 when absent), e.g. value('vmbackup_uploads_total', {'kind': 'dag'})."""
        return self.registry.get_sample_value(name, labels or {}) or 0.0

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)

    def forget_policy(self, namespace: str, name: str) -> None:
        """A deleted policy's series would otherwise be reported forever."""
        for metric in (self.last_success, self.failed_runs):
            with contextlib.suppress(KeyError):
                metric.remove(namespace, name)
        for reason in get_args(MissReason):
            with contextlib.suppress(KeyError):
                self.missed_runs.remove(namespace, name, reason)
