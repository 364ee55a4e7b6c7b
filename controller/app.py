"""Assembling and running the controller: configuration -> Controller -> kopf with our settings."""

from __future__ import annotations

import logging
import time
from typing import Any

import kopf
from google.cloud import storage

from controller.airflow_link import AirflowControl, PollerFeed, RunStatusFeed, make_airflow_client
from controller.config import ControllerConfig
from controller.handlers import build_registry, configure_settings
from controller.metrics import ControllerMetrics
from controller.reconciler import Controller
from controller.targets import EnvironmentResolver, Target, Targets
from controller.tenancy import Tenancy

logger = logging.getLogger(__name__)


def build_controller(
    config: ControllerConfig,
    *,
    storage_client: storage.Client | None = None,
    feed: RunStatusFeed | None = None,
    metrics: ControllerMetrics | None = None,
) -> Controller:
    """Everything the handlers need, from the configuration alone (the tenancy map is read now: fail early)."""

    def airflow_for(target: Target) -> AirflowControl:
        return AirflowControl(make_airflow_client(target.airflow_url, target.auth))  # the target's own credentials

    tenancy = Tenancy.configured(config)
    targets = Targets(
        config,
        tenancy=tenancy,
        storage_client=storage_client,
        airflow_factory=airflow_for,
        resolve_environment=_composer_resolver(),
    )
    return Controller(
        config,
        tenancy=tenancy,
        targets=targets,
        feed=feed or PollerFeed(),
        metrics=metrics,
    )


def _composer_resolver() -> EnvironmentResolver:
    """Composer environment -> (bucket, Airflow URL), read from the Composer API."""

    async def resolve(environment: str) -> tuple[str, str]:
        from controller.composer import discover

        found = await discover(environment)
        return found.bucket, found.airflow_uri

    return resolve


def configure_logging(config: ControllerConfig) -> None:
    """kopf's formatter, JSON by default (one object per line, with the resource in each record)."""
    log_format = kopf.LogFormat.JSON if config.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(log_format=log_format, debug=config.log_level == "DEBUG", quiet=config.log_level == "ERROR")
    logging.getLogger().setLevel(config.log_level)


def replica_priority(started_ns: int | None = None) -> int:
    """This replica's kopf peering priority: distinct per replica, higher for the one that started first.

    kopf pauses every peer when two share a priority ("Possibly conflicting operators with the same
    priority") and lets the highest act otherwise. Minus the start time in microseconds gives each replica
    its own priority, keeps the acting one in place when a new replica joins, and stays below a developer's
    `kopf run --dev` (priority 666), which then pauses the cluster's replicas as kopf intends.
    """
    return -((time.time_ns() if started_ns is None else started_ns) // 1000)


def run(config: ControllerConfig) -> None:
    """Run until stopped by a signal: watches, handlers, peering (when named), liveness, metrics."""
    configure_logging(config)
    controller = build_controller(config)
    if config.metrics_port:
        controller.metrics.serve(config.metrics_port)
    settings = kopf.OperatorSettings()
    configure_settings(settings)
    options: dict[str, Any] = {
        "registry": build_registry(controller),
        "settings": settings,
        "liveness_endpoint": config.liveness_endpoint,
        "clusterwide": not config.namespaces,
        "namespaces": config.namespaces,
    }
    if config.peering_name:
        # Several replicas: the oldest acts, the others wait (README "High availability").
        options["peering_name"] = config.peering_name
        options["priority"] = replica_priority()
        settings.peering.lifetime = config.peering_lifetime_seconds
        settings.peering.mandatory = True  # start paused until the peering shows whether an older replica acts
    else:
        options["standalone"] = True
    logger.info(
        "Starting vmbackup controller: target %s, namespaces %s, poll every %ss, %s",
        config.composer_environment
        or (config.bucket and f"gs://{config.bucket} + {config.airflow_url}")
        or "per policy",
        ", ".join(config.namespaces) or "all",
        config.poll_interval_seconds,
        f"peering {config.peering_name!r}" if config.peering_name else "standalone",
    )
    kopf.run(**options)
