"""Cloud Composer environment discovery: from an environment's resource name to its bucket and Airflow URL.

A policy (or the controller's default) names a Composer environment; everything else the
controller needs about it - which bucket Airflow reads DAGs from, where its web server listens,
which Airflow line (and so which REST API) it runs - is read from the Composer API, never typed in.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from controller.airflow_api import ApiVersion
from vmbackup.model.policy import COMPOSER_ENVIRONMENT_PATTERN

_IMAGE_AIRFLOW = re.compile(r"airflow-(\d+)(?:\.(\d+))?(?:\.(\d+))?")


class ComposerError(Exception):
    """The environment cannot be used (not found, not running yet, no permission)."""


@dataclasses.dataclass(frozen=True)
class ComposerTarget:
    environment: str  # projects/P/locations/L/environments/E
    bucket: str
    dags_prefix: str  # object prefix of the DAGs folder inside the bucket, normally "dags"
    airflow_uri: str
    airflow_version: str | None  # e.g. "2.10.5", from the image version

    @property
    def api_version(self) -> ApiVersion | None:
        """The REST API generation: Airflow 3 serves /api/v2, Airflow 2 /api/v1."""
        if not self.airflow_version:
            return None
        return 2 if int(self.airflow_version.split(".")[0]) >= 3 else 1


def target_from_environment(environment: Any) -> ComposerTarget:
    """Read a ``google.cloud.orchestration.airflow.service_v1.Environment`` (pure: no API calls)."""
    name = str(environment.name)
    config = environment.config
    state = getattr(environment.state, "name", str(environment.state))
    prefix = str(config.dag_gcs_prefix or "")
    uri = str(config.airflow_uri or "").rstrip("/")
    if not prefix or not uri:
        raise ComposerError(
            f"Composer environment {name} has no {'DAG bucket' if not prefix else 'Airflow URL'} yet "
            f"(state {state}); wait until it is RUNNING"
        )
    match = re.fullmatch(r"gs://([^/]+)/?(.*)", prefix)
    if match is None:
        raise ComposerError(f"Composer environment {name} reports an unexpected DAG prefix {prefix!r}")
    image = str(config.software_config.image_version or "")
    version = _IMAGE_AIRFLOW.search(image)
    return ComposerTarget(
        environment=name,
        bucket=match.group(1),
        dags_prefix=match.group(2).strip("/"),
        airflow_uri=uri,
        airflow_version=".".join(part for part in version.groups() if part) if version else None,
    )


async def discover(environment_name: str, client: Any = None) -> ComposerTarget:
    """Ask the Composer API about an environment (needs composer.environments.get)."""
    if not re.fullmatch(COMPOSER_ENVIRONMENT_PATTERN, environment_name):
        raise ComposerError(
            f"{environment_name!r} is not a Composer environment name; "
            "use projects/PROJECT/locations/REGION/environments/NAME"
        )
    from google.api_core import exceptions as api_errors
    from google.cloud.orchestration.airflow import service_v1

    client = client or service_v1.EnvironmentsAsyncClient()
    try:
        environment = await client.get_environment(name=environment_name)
    except api_errors.NotFound:
        raise ComposerError(f"Composer environment {environment_name} does not exist") from None
    except api_errors.PermissionDenied as exc:
        raise ComposerError(
            f"no permission to read Composer environment {environment_name} "
            f"(grant roles/composer.user to the controller's service account): {exc.message}"
        ) from None
    return target_from_environment(environment)
