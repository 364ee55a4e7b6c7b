"""Which Google Cloud projects (and zones) each namespace's policies may back up, and where their DAGs may go.

A VMBackupPolicy makes the controller's service account stop VMs and snapshot disks in the project
it names, so the namespace a policy lives in must be entitled to that project: otherwise anyone who
can create a policy in any namespace could stop anyone's VMs. The cluster admin grants projects per
namespace in a tenancy map (JSON or YAML, mounted from a ConfigMap by the Helm chart)::

    allowAllProjects: false          # true: trust every namespace with every project (not with any Airflow)
    composerTargets: []              # spec.composer targets every namespace may use
    namespaces:
      shop:
        projects:
          - shop-prod                              # any zone
          - {project: shop-dev, zones: [us-central1-a, us-central1-b]}
        backupProjects:                            # spec.snapshot.project: where snapshots may be written
          - shop-backups
        composerTargets:                           # spec.composer targets this namespace may use
          - projects/shop-prod/locations/us-central1/environments/backups
          - {bucket: shop-composer-bucket, airflowUri: "https://airflow.shop", auth: {type: basic, existingSecret: s}}

Default when no map is configured: **refuse every policy** (reason TargetNotAllowed, with the fix).
A controller that silently let any namespace act on any project would be the dangerous default; a
single-tenant cluster opts in with one line (``allowAllProjects: true``).

A policy refused while its DAG runs (its spec moved to a project the namespace may not use) has that
DAG removed. A controller that *starts* with a map refusing existing policies only reports them
Refused and leaves their DAGs alone: a mistyped map must not delete every DAG of the fleet.

``spec.snapshot.project`` (snapshots written to a separate backup project, docs/install.md) is refused unless the
namespace's ``backupProjects`` lists it (or ``allowAllProjects``): the controller's service account creates and
deletes snapshots there, so a namespace may not name another team's backup project. It is a list of its own, not a
``projects`` entry: a backup project holds no VM of the namespace, and granting it as a workload project would let a
policy stop VMs there.

A VMRestore's ``spec.targetProject`` / ``spec.targetZone`` (a restore elsewhere, docs/disaster-restore.md) are
checked against the same ``projects`` grants as a policy's ``spec.project`` (controller/restore_handlers.py).

``spec.composer`` is refused unless the map grants that exact target (controller/target_grants.py),
``allowAllProjects`` included: the controller's Airflow credentials go only where the admin said.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from controller.config import DEFAULT_TARGET_SECRETS_DIR, AirflowCredentials, ControllerConfig
from controller.target_grants import ComposerGrant, TargetAuth, TargetNotAllowedError, find_grant
from vmbackup.model.policy import BackupPolicy, ComposerTarget


class TenancyConfigError(ValueError):
    """The tenancy map cannot be read; the controller refuses to start rather than guess."""


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class ProjectGrant(_Model):
    project: str
    zones: tuple[str, ...] | None = None  # None: every zone of the project


class NamespaceGrant(_Model):
    projects: tuple[ProjectGrant, ...] = ()
    backup_projects: tuple[str, ...] = ()  # spec.snapshot.project values this namespace may write snapshots to
    composer_targets: tuple[ComposerGrant, ...] = ()

    @field_validator("projects", mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        """A bare project ID means every zone of it."""
        if isinstance(value, list | tuple):
            return [{"project": item} if isinstance(item, str) else item for item in value]
        return value


class TenancyMap(_Model):
    allow_all_projects: bool = False
    composer_targets: tuple[ComposerGrant, ...] = ()  # granted to every namespace
    namespaces: dict[str, NamespaceGrant] = Field(default_factory=dict)

    def refusal(self, policy: BackupPolicy) -> str | None:
        """Why this policy may not run as written, or None when its namespace is entitled to every target."""
        if policy.spec.composer is not None:
            try:
                self.grant(policy.namespace, policy.spec.composer)
            except TargetNotAllowedError as exc:
                return str(exc)
        if self.allow_all_projects:
            return None
        return self._project_refusal(policy) or self._backup_project_refusal(policy)

    def grant(self, namespace: str, composer: ComposerTarget) -> ComposerGrant:
        """The admin's grant of this spec.composer to the namespace (TargetNotAllowedError without one)."""
        own = self.namespaces.get(namespace)
        grants = (own.composer_targets if own else ()) + self.composer_targets
        return find_grant(grants, namespace, composer, f"namespaces.{namespace}.composerTargets in the tenancy map")

    def _project_refusal(self, policy: BackupPolicy) -> str | None:
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
        return None

    def _backup_project_refusal(self, policy: BackupPolicy) -> str | None:
        """Why the policy may not write its snapshots to spec.snapshot.project, or None (unset, or granted)."""
        wanted = policy.spec.snapshot.project
        if wanted is None or wanted == policy.spec.project:
            return None
        grant = self.namespaces.get(policy.namespace)
        granted = grant.backup_projects if grant is not None else ()
        if wanted in granted:
            return None
        return (
            f"spec.snapshot.project {wanted!r} is not granted to namespace {policy.namespace!r} as a backup project "
            f"(granted: {', '.join(granted) or 'none'}); ask the cluster admin to add it to "
            f"namespaces.{policy.namespace}.backupProjects in the tenancy map, or remove spec.snapshot.project to "
            f"keep the snapshots in spec.project {policy.spec.project!r}"
        )


NO_TENANCY_MESSAGE = (
    "the controller has no tenancy map, so no namespace may target any project; the cluster admin sets "
    "tenancy.namespaces (or tenancy.allowAllProjects: true) in the Helm values"
)


class Tenancy:
    """The configured map, or the refuse-everything default when there is none; with each granted target's credentials."""

    def __init__(
        self, tenancy_map: TenancyMap | None, credentials: dict[ComposerGrant, AirflowCredentials] | None = None
    ):
        self.map = tenancy_map
        self.credentials = credentials or {}

    def refusal(self, policy: BackupPolicy) -> str | None:
        if self.map is None:
            return NO_TENANCY_MESSAGE
        return self.map.refusal(policy)

    def grant(self, namespace: str, composer: ComposerTarget) -> tuple[ComposerGrant, AirflowCredentials]:
        """The target's grant and the credentials made for it (an environment's: the controller's Google identity)."""
        if self.map is None:
            raise TargetNotAllowedError(f"spec.composer is not allowed: {NO_TENANCY_MESSAGE}")
        found = self.map.grant(namespace, composer)
        return found, self.credentials.get(found, AirflowCredentials(mode="google"))

    @classmethod
    def load(
        cls, path: Path | None = None, text: str | None = None, secrets_dir: Path = DEFAULT_TARGET_SECRETS_DIR
    ) -> Tenancy:
        """From a file (wins) or inline text; JSON is YAML, so one parser reads both."""
        source = "inline VMBACKUP_TENANCY"
        if path is not None:
            try:
                text = path.read_text()
            except OSError as exc:
                raise TenancyConfigError(f"tenancy file {str(path)!r} cannot be read: {exc.strerror}") from None
            source = str(path)
        tenancy_map = parse_tenancy_map(text, source)
        if tenancy_map is None:
            return cls(None)
        return cls(tenancy_map, _credentials(tenancy_map, source, secrets_dir))

    @classmethod
    def configured(cls, config: ControllerConfig) -> Tenancy:
        """The map the controller's settings name (VMBACKUP_TENANCY_FILE or VMBACKUP_TENANCY)."""
        return cls.load(config.tenancy_file, config.tenancy_text, config.target_secrets_dir)


def parse_tenancy_map(text: str | None, source: str) -> TenancyMap | None:
    """The map in ``text`` (JSON is YAML, so one parser reads both); None when empty. No credentials are read:
    ``vmbackupctl coverage`` needs only the grants."""
    if text is None or not text.strip():
        return None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TenancyConfigError(f"tenancy map in {source} is not valid YAML/JSON: {exc}") from None
    try:
        return TenancyMap.model_validate(data or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors())
        raise TenancyConfigError(f"tenancy map in {source} is invalid: {problems}") from None


def _credentials(tenancy_map: TenancyMap, source: str, secrets_dir: Path) -> dict[ComposerGrant, AirflowCredentials]:
    """Each bucket grant's credentials, read now (fail at start-up); one target, one set of credentials."""
    grants = list(tenancy_map.composer_targets)
    for namespace in tenancy_map.namespaces.values():
        grants.extend(namespace.composer_targets)
    credentials: dict[ComposerGrant, AirflowCredentials] = {}
    by_target: dict[tuple[str | None, str | None], ComposerGrant] = {}
    for grant in grants:
        if grant.environment is not None:
            continue
        earlier = by_target.setdefault((grant.bucket, grant.airflow_uri), grant)
        if earlier.auth != grant.auth:
            raise TenancyConfigError(
                f"tenancy map in {source} grants {grant.describe()} twice with different auth; one target has one "
                "set of credentials: give every grant of it the same auth"
            )
        try:
            credentials[grant] = (grant.auth or TargetAuth()).load(secrets_dir)
        except ValueError as exc:
            raise TenancyConfigError(f"tenancy map in {source}: {grant.describe()}: {exc}") from None
    return credentials
