"""``python -m controller`` / ``vmbackup-controller``: run the controller against the cluster in KUBECONFIG
(or the in-cluster service account). Flags override the ``VMBACKUP_*`` environment the Helm chart sets."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from controller.config import AUTH_MODES, ConfigError, ControllerConfig
from controller.tenancy import TenancyConfigError
from controller.wait_mode import WAIT_MODE_SETTINGS


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="vmbackup-controller",
        description="Schedules consistent Compute Engine VM backups through Cloud Composer. "
        "Every flag has a VMBACKUP_* environment variable (shown in brackets); flags win.",
    )
    target = parser.add_argument_group("default target (a policy's spec.composer overrides it)")
    target.add_argument("--composer-environment", help="projects/P/locations/L/environments/E [COMPOSER_ENVIRONMENT]")
    target.add_argument("--bucket", help="DAG bucket of a self-managed Airflow [BUCKET]")
    target.add_argument("--airflow-url", help="Airflow web server URL, with --bucket [AIRFLOW_URL]")
    target.add_argument("--airflow-auth", choices=AUTH_MODES, help="how to authenticate to Airflow [AIRFLOW_AUTH]")
    parser.add_argument(
        "-n", "--namespace", dest="namespaces", action="append", help="watch only these (repeatable) [NAMESPACES]"
    )
    parser.add_argument("--poll-interval", type=float, help="seconds between Airflow status polls [POLL_INTERVAL]")
    parser.add_argument(
        "--wait-mode",
        choices=WAIT_MODE_SETTINGS,
        help="how DAG sensors wait; auto: deferrable where Airflow has a live triggerer [WAIT_MODE]",
    )
    parser.add_argument("--lease", help="act only while holding this coordination.k8s.io Lease [LEASE_NAME]")
    parser.add_argument("--lease-namespace", help="the Lease's namespace [LEASE_NAMESPACE]")
    parser.add_argument("--metrics-port", type=int, help="Prometheus port, 0 disables [METRICS_PORT]")
    parser.add_argument("--liveness", help="liveness endpoint URL, e.g. http://0.0.0.0:8080/healthz [LIVENESS]")
    parser.add_argument("--tenancy-file", type=Path, help="namespace -> projects map, JSON or YAML [TENANCY_FILE]")
    parser.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="[LOG_LEVEL]")
    parser.add_argument("--log-format", choices=("json", "plain"), help="[LOG_FORMAT]")
    parser.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    return parser.parse_args(argv)


def load_config(args: argparse.Namespace) -> ControllerConfig:
    overrides = {
        "composer_environment": args.composer_environment,
        "bucket": args.bucket,
        "airflow_url": args.airflow_url,
        "namespaces": tuple(args.namespaces) if args.namespaces else None,
        "poll_interval_seconds": args.poll_interval,
        "wait_mode": args.wait_mode,
        "lease_name": args.lease,
        "lease_namespace": args.lease_namespace,
        "metrics_port": args.metrics_port,
        "liveness_endpoint": args.liveness,
        "tenancy_file": args.tenancy_file,
        "log_level": args.log_level,
        "log_format": args.log_format,
    }
    config = ControllerConfig.from_env(**overrides)
    if args.airflow_auth:
        from dataclasses import replace

        config = replace(config, airflow_auth=replace(config.airflow_auth, mode=args.airflow_auth))
    return config


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load_config(args)
        if args.check_config:
            from controller.tenancy import Tenancy

            Tenancy.configured(config)
            print(f"configuration OK: {config!r}")
            return 0
        from controller.app import run

        run(config)
    except (ConfigError, TenancyConfigError) as exc:
        print(f"vmbackup-controller: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
