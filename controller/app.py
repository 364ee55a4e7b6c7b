"""Assembling and running the controller: configuration -> Controller -> kopf with our settings."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from google.cloud import storage

from controller.airflow_link import AirflowControl, PollerFeed, RunStatusFeed, make_airflow_client
from controller.compute_inventory import ComputeInstanceLister, InstanceLister
from controller.config import ControllerConfig
from controller.coverage_scan import CoverageScan, protectors_of
from controller.handlers import build_registry
from controller.metrics import ControllerMetrics
from controller.reconciler import Controller
from controller.replica import lead_then_operate
from controller.targets import EnvironmentResolver, Target, Targets
from controller.tenancy import Tenancy
from vmbackup.compute.rate_budget import BucketLedger, ProcessLedger, RateBudget

logger = logging.getLogger(__name__)


def build_controller(
    config: ControllerConfig,
    *,
    storage_client: storage.Client | None = None,
    feed: RunStatusFeed | None = None,
    metrics: ControllerMetrics | None = None,
    lister: InstanceLister | None = None,
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
    controller = Controller(
        config,
        tenancy=tenancy,
        targets=targets,
        feed=feed or PollerFeed(),
        metrics=metrics,
    )
    controller.coverage = CoverageScan(
        tenancy,
        lister or ComputeInstanceLister(config.compute_endpoint, _rate_budget(config, storage_client)),
        controller.metrics,
        lambda: protectors_of(controller.states.values()),
        interval_seconds=config.coverage_interval_seconds,
        namespaces=config.namespaces,
    )
    return controller


def _rate_budget(config: ControllerConfig, storage_client: storage.Client | None) -> RateBudget:
    """The list calls' budget: shared through the DAG bucket's ledger with the backup DAGs' calls (their default
    ledger is the same bucket, plugins/vmbackup/settings.py), else this process's own."""
    if not config.bucket:
        return RateBudget(ProcessLedger(), {}, 60.0)
    bucket_name = config.bucket
    return RateBudget(BucketLedger(lambda: (storage_client or storage.Client()).bucket(bucket_name)), {}, 60.0)


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


def run(config: ControllerConfig) -> None:
    """Run until stopped by a signal: under the Lease when one is named (docs/operations/high-availability.md), else at once."""
    configure_logging(config)
    controller = build_controller(config)
    if config.metrics_port:
        controller.metrics.serve(config.metrics_port)
    options: dict[str, Any] = {
        "registry": build_registry(controller),  # its startup handler configures kopf's settings (one place)
        "clusterwide": not config.namespaces,
        "namespaces": config.namespaces,
        "standalone": True,  # the Lease decides who acts, not kopf's peering (controller/replica.py says why)
    }
    logger.info(
        "Starting vmbackup controller: target %s, namespaces %s, poll every %ss, %s",
        config.composer_environment
        or (config.bucket and f"gs://{config.bucket} + {config.airflow_url}")
        or "per policy",
        ", ".join(config.namespaces) or "all",
        config.poll_interval_seconds,
        f"acting only while holding Lease {config.lease_namespace}/{config.lease_name}"
        if config.lease_name
        else "no leader election",
    )
    if config.lease_name:
        asyncio.run(lead_then_operate(config, options, controller.metrics))
    else:
        kopf.run(liveness_endpoint=config.liveness_endpoint, **options)
