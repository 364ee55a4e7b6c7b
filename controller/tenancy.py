"""Which Google Cloud projects (and zones) each namespace's policies may back up.

A VMBackupPolicy makes the controller's service account stop VMs and snapshot disks in the project
it names, so the namespace a policy lives in must be entitled to that project: otherwise anyone who
can create a policy in any namespace could stop anyone's VMs. The cluster admin grants projects per
namespace in a tenancy map (JSON or YAML, mounted from a ConfigMap by the Helm chart)::

    allowAllProjects: false          # true: trust every namespace with every project
    namespaces:
      shop:
        projects:
          - shop-prod                              # any zone
          - {project: shop-dev, zones: [us-central1-a, us-central1-b]}
        composerTargets:                           # spec.composer values this namespace may use
          - projects/shop-prod/locations/us-central1/environments/backups
          - shop-composer-bucket

Default when no map is configured: **refuse every policy** (reason TargetNotAllowed, with the fix).
A controller that silently let any namespace act on any project would be the dangerous default; a
single-tenant cluster opts in with one line (``allowAllProjects: true``).

A policy refused while its DAG runs (its spec moved to a project the namespace may not use) has that
DAG removed. A controller that *starts* with a map refusing existing policies only reports them
Refused and leaves their DAGs alone: a mistyped map must not delete every DAG of the fleet.

``spec.composer`` overrides are refused unless listed in the namespace's ``composerTargets`` (or
``allowAllProjects`` is set): pointing a policy at another team's Composer would run our DAG there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from vmbackup.model.policy import BackupPolicy


class TenancyConfigError(ValueError):
    """The tenancy map cannot be read; the controller refuses to start rather than guess."""


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class ProjectGrant(_Model):
    project: str
    zones: tuple[str, ...] | None = None  # None: every zone of the project


class NamespaceGrant(_Model):
    projects: tuple[ProjectGrant, ...] = ()
    composer_targets: tuple[str, ...] = ()

    @field_validator("projects", mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        """A bare project ID means every zone of it."""
        if isinstance(value, list | tuple):
            return [{"project": item} if isinstance(item, str) else item for item in value]
        return value


class TenancyMap(_Model):
    allow_all_projects: bool = False
    namespaces: dict[str, NamespaceGrant] = Field(default_factory=dict)

    def refusal(self, policy: BackupPolicy) -> str | None:
        """Why this policy may not run as written, or None when its namespace is entitled to every target."""
        if self.allow_all_projects:
            return None
        spec = policy.spec
        grant = self.namespaces.get(policy.namespace)
        if grant is None:
            return (
                f"namespace {policy.namespace!r} is not granted any Google Cloud project; ask the cluster admin to "
                f"add it to the tenancy map (namespaces.{policy.namespace}.projects: [{spec.project}])"
            )
        project = next((p for p in grant.projects if p.project == spec.project), None)
        if project is None:
            allowed = ", ".join(p.project for p in grant.projects) or "none"
            return (
                f"spec.project {spec.project!r} is not allowed for namespace {policy.namespace!r} "
                f"(allowed: {allowed}); use an allowed project or ask the cluster admin to grant it"
            )
        if project.zones is not None:
            zones = [i.zone for i in spec.instances or []] + list(spec.selector.zones if spec.selector else [])
            denied = sorted({z for z in zones if z not in project.zones})
            if denied:
                return (
                    f"zones {', '.join(denied)} of project {spec.project!r} are not allowed for namespace "
                    f"{policy.namespace!r} (allowed: {', '.join(project.zones)})"
                )
        if spec.composer is not None:
            wanted = spec.composer.environment or spec.composer.bucket or ""
            if wanted not in grant.composer_targets:
                return (
                    f"spec.composer {wanted!r} is not allowed for namespace {policy.namespace!r}; remove "
                    f"spec.composer to use the controller's default, or ask the cluster admin to add it to "
                    f"namespaces.{policy.namespace}.composerTargets"
                )
        return None


NO_TENANCY_MESSAGE = (
    "the controller has no tenancy map, so no namespace may target any project; the cluster admin sets "
    "tenancy.namespaces (or tenancy.allowAllProjects: true) in the Helm values"
)


class Tenancy:
    """The configured map, or the refuse-everything default when there is none."""

    def __init__(self, tenancy_map: TenancyMap | None):
        self.map = tenancy_map

    def refusal(self, policy: BackupPolicy) -> str | None:
        if self.map is None:
            return NO_TENANCY_MESSAGE
        return self.map.refusal(policy)

    @classmethod
    def load(cls, path: Path | None = None, text: str | None = None) -> Tenancy:
        """From a file (wins) or inline text; JSON is YAML, so one parser reads both."""
        source = "inline VMBACKUP_TENANCY"
        if path is not None:
            try:
                text = path.read_text()
            except OSError as exc:
                raise TenancyConfigError(f"tenancy file {str(path)!r} cannot be read: {exc.strerror}") from None
            source = str(path)
        if text is None or not text.strip():
            return cls(None)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise TenancyConfigError(f"tenancy map in {source} is not valid YAML/JSON: {exc}") from None
        try:
            return cls(TenancyMap.model_validate(data or {}))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()
            )
            raise TenancyConfigError(f"tenancy map in {source} is invalid: {problems}") from None
