"""The controller's settings: environment variables (what the Helm chart sets), overridable by flags.

Every setting has one environment variable (``VMBACKUP_*``); secrets can come from a file instead
(``*_FILE``) so they are mounted from a Secret rather than placed in the pod spec. A bad value stops
the controller at start-up with the variable's name and how to fix it, never halfway through.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from controller.wait_mode import WAIT_MODE_SETTINGS, WaitModeSetting
from vmbackup.model.run_signature import SIGNING_KEY_ENV

AirflowAuthMode = Literal["google", "basic", "jwt", "none"]
LogFormat = Literal["json", "plain"]
AUTH_MODES: tuple[AirflowAuthMode, ...] = ("google", "basic", "jwt", "none")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

ENV_PREFIX = "VMBACKUP_"
DEFAULT_PORTS = {"http": 80, "https": 443}
# Where the Secrets named by the tenancy map's composerTargets[].auth are mounted (one directory per Secret).
DEFAULT_TARGET_SECRETS_DIR = Path("/etc/vmbackup/target-auth")
DEFAULT_KEEPER_SCHEDULE = "*/10 * * * *"  # the keeper DAG's schedule: every 10 minutes
# client-go's JitterFactor: followers retry every RETRY_PERIOD x [1, 1.2), so the deadline must leave room.
LEASE_JITTER_FACTOR = 1.2


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the variable and the fix."""


@dataclasses.dataclass(frozen=True)
class AirflowCredentials:
    """How the controller authenticates to the Airflow REST API.

    google: Google ADC (Composer); basic: username + password; jwt: a bearer token; none: no header.
    """

    mode: AirflowAuthMode = "google"
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    token: str | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(frozen=True)
class ControllerConfig:
    """Everything the controller needs to know about its environment."""

    composer_environment: str | None = None  # projects/P/locations/L/environments/E
    bucket: str | None = None  # self-managed Airflow: the DAG bucket ...
    airflow_url: str | None = None  # ... and the Airflow web server
    airflow_auth: AirflowCredentials = dataclasses.field(default_factory=AirflowCredentials)
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    poll_interval_seconds: float = 60.0
    # How DAG sensors wait: auto = deferrable where Airflow reports a live triggerer, else reschedule.
    wait_mode: WaitModeSetting = "auto"
    wait_mode_refresh_seconds: float = 300.0
    # The coordination.k8s.io Lease a replica must hold before it acts (docs/operations/high-availability.md).
    # None: no election, the process acts at once (one process outside a cluster, e.g. `make demo`).
    lease_name: str | None = None
    lease_namespace: str = "default"
    # client-go's defaults (tools/leaderelection): a killed leader is taken over LEASE_DURATION after its
    # last renewal; a leader that cannot renew for RENEW_DEADLINE stops first; everyone retries every RETRY_PERIOD.
    lease_duration_seconds: float = 15.0
    lease_renew_deadline_seconds: float = 10.0
    lease_retry_period_seconds: float = 2.0
    metrics_port: int = 9090  # 0: no metrics endpoint
    liveness_endpoint: str | None = "http://0.0.0.0:8080/healthz"
    tenancy_file: Path | None = None
    tenancy_text: str | None = None  # inline tenancy map (JSON or YAML); the file wins when both are set
    target_secrets_dir: Path = DEFAULT_TARGET_SECRETS_DIR
    log_level: str = "INFO"
    log_format: LogFormat = "json"
    # The keeper DAG (one per bucket) that starts again the VMs this product stopped (docs/operations/vms-left-stopped.md):
    # its schedule, how often its report is read, and when that report counts as stale.
    keeper_schedule: str = DEFAULT_KEEPER_SCHEDULE
    keeper_read_interval_seconds: float = 120.0
    keeper_stale_after_intervals: float = 3.0
    # The coverage scan (docs/operations/coverage.md): how often the granted projects' VMs are listed (0: never),
    # and where Compute Engine is (None: Google's; http://: the simulator, anonymously)
    coverage_interval_seconds: float = 900.0
    compute_endpoint: str | None = None
    # The key the controller signs each restore run's conf with; the Airflow environment holds the same one
    # (docs/operations/restore-signing.md). None: restores wait, saying the key is missing.
    run_signing_key: str | None = dataclasses.field(default=None, repr=False)
    run_signature_ttl_seconds: float = 6 * 3600.0  # a restore run must start this soon after it was triggered

    def __post_init__(self) -> None:
        if self.composer_environment and (self.bucket or self.airflow_url):
            raise ConfigError(
                "set either VMBACKUP_COMPOSER_ENVIRONMENT or VMBACKUP_BUCKET with VMBACKUP_AIRFLOW_URL, not both"
            )
        if not self.composer_environment and bool(self.bucket) != bool(self.airflow_url):
            raise ConfigError("VMBACKUP_BUCKET and VMBACKUP_AIRFLOW_URL go together: set both (or neither)")
        if self.airflow_url:
            try:
                airflow_url(self.airflow_url)
            except ValueError as exc:
                raise ConfigError(f"VMBACKUP_AIRFLOW_URL={self.airflow_url!r} {exc}") from None
        if self.poll_interval_seconds <= 0:
            raise ConfigError("VMBACKUP_POLL_INTERVAL must be a positive number of seconds, e.g. 60")
        if self.wait_mode not in WAIT_MODE_SETTINGS:
            raise ConfigError(f"VMBACKUP_WAIT_MODE={self.wait_mode!r} must be one of {', '.join(WAIT_MODE_SETTINGS)}")
        if self.wait_mode_refresh_seconds <= 0:
            raise ConfigError("VMBACKUP_WAIT_MODE_REFRESH must be a positive number of seconds, e.g. 300")
        self._check_lease_timings()
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError("VMBACKUP_METRICS_PORT must be a port number (0 disables metrics)")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"VMBACKUP_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        self._check_keeper()
        if self.coverage_interval_seconds < 0:
            raise ConfigError("VMBACKUP_COVERAGE_INTERVAL must be a number of seconds (0 disables the scan), e.g. 900")
        self._check_signing()
        auth = self.airflow_auth
        if auth.mode == "basic" and not (auth.username and auth.password):
            raise ConfigError(
                "VMBACKUP_AIRFLOW_AUTH=basic needs VMBACKUP_AIRFLOW_USERNAME and VMBACKUP_AIRFLOW_PASSWORD "
                "(or VMBACKUP_AIRFLOW_PASSWORD_FILE)"
            )
        if auth.mode == "jwt" and not auth.token and not (auth.username and auth.password):
            raise ConfigError(
                "VMBACKUP_AIRFLOW_AUTH=jwt needs VMBACKUP_AIRFLOW_TOKEN (or _TOKEN_FILE), or a username and "
                "password to obtain one"
            )

    def _check_keeper(self) -> None:
        from controller.schedule_interval import schedule_interval_seconds

        try:
            schedule_interval_seconds(self.keeper_schedule)
        except Exception:
            raise ConfigError(
                f"VMBACKUP_KEEPER_SCHEDULE={self.keeper_schedule!r} must be a 5-field cron expression, e.g. "
                f"{DEFAULT_KEEPER_SCHEDULE!r}"
            ) from None
        if self.keeper_read_interval_seconds <= 0:
            raise ConfigError("VMBACKUP_KEEPER_READ_INTERVAL must be a positive number of seconds, e.g. 120")
        if self.keeper_stale_after_intervals < 1:
            raise ConfigError("VMBACKUP_KEEPER_STALE_AFTER must be a number of keeper intervals of at least 1, e.g. 3")

    def _check_signing(self) -> None:
        from vmbackup.model.run_signature import MIN_KEY_LENGTH

        if self.run_signing_key is not None and len(self.run_signing_key) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"{SIGNING_KEY_ENV} must have at least {MIN_KEY_LENGTH} characters, e.g. `openssl rand -hex 32`"
            )
        if self.run_signature_ttl_seconds < 60:
            raise ConfigError("VMBACKUP_RUN_SIGNATURE_TTL must be a number of seconds of at least 60, e.g. 21600")

    def _check_lease_timings(self) -> None:
        """client-go's NewLeaderElector checks: the leader must give up before anyone else may take over."""
        duration = self.lease_duration_seconds
        deadline = self.lease_renew_deadline_seconds
        retry = self.lease_retry_period_seconds
        if not duration == int(duration) >= 1:
            raise ConfigError("VMBACKUP_LEASE_DURATION must be a whole number of seconds, e.g. 15")
        if not duration > deadline:
            raise ConfigError(
                "VMBACKUP_LEASE_DURATION must be greater than VMBACKUP_LEASE_RENEW_DEADLINE, e.g. 15 > 10"
            )
        if not retry > 0 or not deadline > LEASE_JITTER_FACTOR * retry:
            raise ConfigError(
                f"VMBACKUP_LEASE_RENEW_DEADLINE must be greater than {LEASE_JITTER_FACTOR} x "
                "VMBACKUP_LEASE_RETRY_PERIOD (a positive number), e.g. 10 > 1.2 x 2"
            )

    @property
    def has_default_target(self) -> bool:
        """Without one, every policy must name its own spec.composer target."""
        return bool(self.composer_environment or self.bucket)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> ControllerConfig:
        """Read ``VMBACKUP_*`` variables; keyword overrides (from flags) win when not None."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(ENV_PREFIX + name, "").strip()
            return value or None

        def secret(name: str) -> str | None:
            path = get(name + "_FILE")
            if path:
                try:
                    return Path(path).read_text().strip() or None
                except OSError as exc:
                    raise ConfigError(f"{ENV_PREFIX}{name}_FILE={path!r} cannot be read: {exc.strerror}") from None
            return get(name)

        mode = (get("AIRFLOW_AUTH") or "google").lower()
        if mode not in AUTH_MODES:
            raise ConfigError(f"{ENV_PREFIX}AIRFLOW_AUTH={mode!r} must be one of {', '.join(AUTH_MODES)}")
        log_format = (get("LOG_FORMAT") or "json").lower()
        if log_format not in ("json", "plain"):
            raise ConfigError(f"{ENV_PREFIX}LOG_FORMAT={log_format!r} must be json or plain")
        liveness = env.get(ENV_PREFIX + "LIVENESS")
        values: dict[str, object] = {
            "composer_environment": get("COMPOSER_ENVIRONMENT"),
            "bucket": get("BUCKET"),
            "airflow_url": get("AIRFLOW_URL"),
            "airflow_auth": AirflowCredentials(
                mode=mode,  # checked against AUTH_MODES above
                username=get("AIRFLOW_USERNAME"),
                password=secret("AIRFLOW_PASSWORD"),
                token=secret("AIRFLOW_TOKEN"),
            ),
            "namespaces": tuple(ns.strip() for ns in (get("NAMESPACES") or "").split(",") if ns.strip()),
            "poll_interval_seconds": _number(get("POLL_INTERVAL"), "POLL_INTERVAL", 60.0),
            "wait_mode": (get("WAIT_MODE") or "auto").lower(),
            "wait_mode_refresh_seconds": _number(get("WAIT_MODE_REFRESH"), "WAIT_MODE_REFRESH", 300.0),
            "lease_name": get("LEASE_NAME"),
            "lease_namespace": get("LEASE_NAMESPACE") or cls.lease_namespace,
            "lease_duration_seconds": _number(get("LEASE_DURATION"), "LEASE_DURATION", cls.lease_duration_seconds),
            "lease_renew_deadline_seconds": _setting(get, "LEASE_RENEW_DEADLINE", cls.lease_renew_deadline_seconds),
            "lease_retry_period_seconds": _setting(get, "LEASE_RETRY_PERIOD", cls.lease_retry_period_seconds),
            "metrics_port": int(_number(get("METRICS_PORT"), "METRICS_PORT", 9090)),
            "liveness_endpoint": cls.liveness_endpoint if liveness is None else (liveness.strip() or None),
            "tenancy_file": Path(path) if (path := get("TENANCY_FILE")) else None,
            "tenancy_text": get("TENANCY"),
            "target_secrets_dir": Path(path) if (path := get("TARGET_SECRETS_DIR")) else DEFAULT_TARGET_SECRETS_DIR,
            "log_level": (get("LOG_LEVEL") or "INFO").upper(),
            "log_format": log_format,
            "keeper_schedule": get("KEEPER_SCHEDULE") or DEFAULT_KEEPER_SCHEDULE,
            "keeper_read_interval_seconds": _number(get("KEEPER_READ_INTERVAL"), "KEEPER_READ_INTERVAL", 120.0),
            "keeper_stale_after_intervals": _number(get("KEEPER_STALE_AFTER"), "KEEPER_STALE_AFTER", 3.0),
            "coverage_interval_seconds": _setting(get, "COVERAGE_INTERVAL", cls.coverage_interval_seconds),
            "compute_endpoint": get("COMPUTE_ENDPOINT"),
        }
        values.update(_signing_settings(get, secret))
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)  # type: ignore[arg-type]


def _setting(get: Callable[[str], str | None], name: str, default: float) -> float:
    """A number setting: VMBACKUP_<name> read through ``get``, else the default."""
    return _number(get(name), name, default)


def _signing_settings(get: Callable[[str], str | None], secret: Callable[[str], str | None]) -> dict[str, object]:
    """The restore-run signing key (from a Secret, usually a mounted file) and how soon a signed run must start."""
    return {
        "run_signing_key": secret(SIGNING_KEY_ENV.removeprefix(ENV_PREFIX)),
        "run_signature_ttl_seconds": _number(
            get("RUN_SIGNATURE_TTL"), "RUN_SIGNATURE_TTL", ControllerConfig.run_signature_ttl_seconds
        ),
    }


def _number(text: str | None, name: str, default: float) -> float:
    if text is None:
        return default
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}{name}={text!r} must be a number") from None


def airflow_url(url: str) -> str:
    """The canonical form of an Airflow base URL (lower-case scheme and host, no default port, no trailing /).

    Raises ValueError for what must never carry or steer credentials: user:password@, a query or a fragment.
    """
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "must not carry credentials (user:password@): the controller authenticates with the credentials "
            "the cluster admin configured for the target"
        )
    if parts.query or parts.fragment:
        raise ValueError("must not have a query (?...) or a fragment (#...)")
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has a port that is not a number from 0 to 65535") from None
    netloc = parts.hostname.lower() if ":" not in parts.hostname else f"[{parts.hostname.lower()}]"
    if port is not None and port != DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"
