"""Which ``spec.composer`` targets the cluster admin granted, and the Airflow credentials made for each.

The controller authenticates to Airflow with real credentials (a password, a JWT, or its Google
token, which can write the Composer bucket), so where it sends them is decided by the cluster admin,
never by a policy: a policy may only *name* a target the tenancy map grants its namespace, and the
credentials used there are the ones the admin configured for that target. Two kinds of grant::

    composerTargets:
      - projects/shop-prod/locations/us-central1/environments/backups   # or {environment: ...}
      - bucket: shop-composer-bucket
        airflowUri: https://airflow.shop.example.com
        auth: {type: basic, existingSecret: shop-airflow}   # keys username, password (or token)

A Composer environment's bucket and Airflow URL come from the Composer API, and only there does the
controller send its Google token unasked. A bucket is granted only together with its Airflow URL;
its ``auth`` (default ``none``) reads the named Secret from files the Helm chart mounts under
``VMBACKUP_TARGET_SECRETS_DIR/<secret>/<key>``. A bare bucket name (the 0.1.x format, which
let the policy choose the URL) is refused when the map is read, with the entry to write instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from pydantic.alias_generators import to_camel

from controller.config import AirflowCredentials, airflow_url
from vmbackup.model.policy import COMPOSER_ENVIRONMENT_PATTERN, ComposerTarget

SECRET_NAME = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"  # a Kubernetes Secret name (DNS subdomain)


class TargetNotAllowedError(PermissionError):
    """The policy names a target its namespace was not granted; nothing is uploaded or requested there."""


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class TargetAuth(_Model):
    """Credentials for one granted Airflow; secrets come from a mounted Secret, never from the map itself."""

    type: Literal["none", "basic", "jwt", "google"] = "none"
    existing_secret: str | None = None
    username_key: str = "username"
    password_key: str = "password"
    token_key: str | None = None  # jwt only: a ready-made token instead of username + password

    @field_validator("existing_secret")
    @classmethod
    def _secret_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(SECRET_NAME, value):
            raise ValueError(f"{value!r} is not a Secret name")
        return value

    @model_validator(mode="after")
    def _secret_when_needed(self) -> TargetAuth:
        if self.type in ("basic", "jwt") and not self.existing_secret:
            raise ValueError(f"auth.type {self.type} needs auth.existingSecret (a Secret with its credentials)")
        return self

    def load(self, secrets_dir: Path) -> AirflowCredentials:
        """The credentials themselves, read from ``secrets_dir/<existingSecret>/<key>``."""
        if self.type in ("none", "google"):
            return AirflowCredentials(mode=self.type)

        def read(key: str) -> str:
            path = secrets_dir / str(self.existing_secret) / key
            try:
                return path.read_text().strip()
            except OSError as exc:
                raise ValueError(
                    f"cannot read key {key!r} of Secret {self.existing_secret!r} at {path} ({exc.strerror}); "
                    "the Helm chart mounts every Secret the tenancy map names (VMBACKUP_TARGET_SECRETS_DIR)"
                ) from None

        if self.type == "jwt" and self.token_key:
            return AirflowCredentials(mode="jwt", token=read(self.token_key))
        return AirflowCredentials(mode=self.type, username=read(self.username_key), password=read(self.password_key))


class ComposerGrant(_Model):
    """One target a namespace may name in spec.composer: a Composer environment, or a bucket with its Airflow."""

    environment: str | None = None
    bucket: str | None = None
    airflow_uri: str | None = None
    auth: TargetAuth | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: object) -> object:
        """A bare string is an environment name; a bare bucket name is the unsafe old format, refused."""
        if not isinstance(value, str):
            return value
        if re.fullmatch(COMPOSER_ENVIRONMENT_PATTERN, value):
            return {"environment": value}
        raise ValueError(
            f"{value!r} grants a bucket without its Airflow URL (the 0.1.x format, which let a policy "
            f"send the controller's credentials to any airflowUri); write "
            f"{{bucket: {value}, airflowUri: <its Airflow URL>, auth: {{type: basic|jwt|google|none, "
            f"existingSecret: <Secret>}}}} instead"
        )

    @model_validator(mode="after")
    def _one_target(self) -> ComposerGrant:
        if self.environment is not None:
            if self.bucket or self.airflow_uri or self.auth:
                raise ValueError(
                    "an environment grant takes no bucket, airflowUri or auth: both come from the Composer API "
                    "and the controller's Google identity authenticates"
                )
            if not re.fullmatch(COMPOSER_ENVIRONMENT_PATTERN, self.environment):
                raise ValueError(f"{self.environment!r} is not projects/PROJECT/locations/REGION/environments/NAME")
            return self
        if not self.bucket or not self.airflow_uri:
            raise ValueError("set environment, or bucket together with airflowUri")
        canonical = airflow_url(self.airflow_uri)
        if (self.auth or TargetAuth()).type == "google" and not canonical.startswith("https://"):
            raise ValueError("auth.type google needs an https:// airflowUri (a bearer token never goes in clear)")
        return self.model_copy(update={"airflow_uri": canonical})

    def describe(self) -> str:
        return self.environment or f"{{bucket: {self.bucket}, airflowUri: {self.airflow_uri}}}"

    def matches(self, composer: ComposerTarget, policy_url: str | None) -> bool:
        if composer.environment is not None:
            return composer.environment == self.environment
        return self.environment is None and composer.bucket == self.bucket and policy_url == self.airflow_uri


def find_grant(
    grants: tuple[ComposerGrant, ...], namespace: str, composer: ComposerTarget, where: str
) -> ComposerGrant:
    """The grant a policy's spec.composer names; TargetNotAllowedError naming the field and the fix otherwise."""
    policy_url = None
    if composer.environment is None:
        try:
            policy_url = airflow_url(str(composer.airflow_uri))
        except ValueError as exc:
            raise TargetNotAllowedError(f"spec.composer.airflowUri {composer.airflow_uri!r} {exc}") from None
    found = next((grant for grant in grants if grant.matches(composer, policy_url)), None)
    if found is not None:
        return found
    if composer.environment is not None:
        raise TargetNotAllowedError(
            f"spec.composer.environment {composer.environment!r} is not granted to namespace {namespace!r}; remove "
            f"spec.composer to use the controller's default target, or ask the cluster admin to add it to {where}"
        )
    same_bucket = [g.airflow_uri for g in grants if g.environment is None and g.bucket == composer.bucket]
    granted = f" (granted with airflowUri {', '.join(map(str, same_bucket))})" if same_bucket else ""
    raise TargetNotAllowedError(
        f"spec.composer.airflowUri {composer.airflow_uri!r} with bucket {composer.bucket!r} is not granted to "
        f"namespace {namespace!r}{granted}; the controller sends Airflow credentials only to targets the cluster "
        f"admin granted: use a granted bucket and airflowUri, remove spec.composer to use the default target, or "
        f"ask the admin to add {{bucket: {composer.bucket}, airflowUri: {policy_url}, auth: ...}} to {where}"
    )
