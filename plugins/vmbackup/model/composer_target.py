"""spec.composer: where one policy's DAG goes when not to the controller's default environment. Split out of
policy.py by concern; the tenancy map (controller/tenancy.py) decides whether a namespace may use it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from vmbackup.model.crd_base import COMPOSER_ENVIRONMENT_PATTERN, CrdModel


class ComposerTarget(CrdModel):
    """Where this policy's DAG goes, when not the controller's default environment."""

    environment: Annotated[str, StringConstraints(pattern=COMPOSER_ENVIRONMENT_PATTERN)] | None = Field(
        default=None, description="Composer environment: projects/P/locations/L/environments/E."
    )
    bucket: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][-_.a-z0-9]{1,220}[a-z0-9]$")] | None = Field(
        default=None, description="Composer bucket name (self-managed Airflow)."
    )
    airflow_uri: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=2048)] | None = Field(
        default=None, description="Airflow web server URL (self-managed Airflow)."
    )

    @model_validator(mode="after")
    def _one_target(self) -> ComposerTarget:
        if self.environment is None and self.bucket is None:
            raise ValueError("set environment, or bucket with airflowUri")
        if self.environment is not None and (self.bucket or self.airflow_uri):
            raise ValueError("set either environment or bucket/airflowUri, not both")
        if self.bucket is not None and self.airflow_uri is None:
            raise ValueError("bucket needs airflowUri too")
        return self
