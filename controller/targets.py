"""Where policies' DAGs go: a registry of (bucket, Airflow) targets, each with its own clients and credentials.

The controller has a default target (a Composer environment, or a bucket + Airflow URL) and a
policy may name another in ``spec.composer``, which resolves only through the tenancy map's grant of
it (controller/target_grants.py): a Target carries the credentials made for it, so the default
target's never reach another Airflow and an ungranted address is never resolved at all. A target is
identified by its bucket and Airflow URL; policies sharing a target share its BucketSync, its Airflow
client and its one batched status poll. Our plugin package is synced to a target's bucket before the
first DAG lands there, so no DAG is ever parsed without the code it imports.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from google.cloud import storage

from controller.bucket import BucketSync, PluginSyncResult
from controller.config import AirflowCredentials, ControllerConfig, airflow_url
from controller.tenancy import Tenancy
from vmbackup.model.policy import ComposerTarget

logger = logging.getLogger(__name__)


class TargetUnavailableError(RuntimeError):
    """The target cannot be resolved or reached right now; the reconcile is retried."""


@dataclasses.dataclass(frozen=True)
class Target:
    bucket: str
    airflow_url: str
    environment: str | None = None  # the Composer environment it was resolved from, if any
    auth: AirflowCredentials = dataclasses.field(default_factory=lambda: AirflowCredentials(mode="none"), compare=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.bucket, self.airflow_url)

    def describe(self) -> str:
        return self.environment or f"gs://{self.bucket} + {self.airflow_url}"


# Composer environment name -> (bucket, Airflow URL); the Composer API in production, anything in tests.
EnvironmentResolver = Callable[[str], Awaitable[tuple[str, str]]]
AirflowFactory = Callable[[Target], Any]


class Targets:
    """Resolves targets and hands out their per-target clients (created once, reused)."""

    def __init__(
        self,
        config: ControllerConfig,
        *,
        tenancy: Tenancy,
        storage_client: storage.Client | None = None,
        airflow_factory: AirflowFactory,
        resolve_environment: EnvironmentResolver | None = None,
    ):
        self.config = config
        self.tenancy = tenancy
        self._storage_client = storage_client
        self._airflow_factory = airflow_factory
        self._resolve_environment = resolve_environment
        self._environments: dict[str, tuple[str, str]] = {}
        self._buckets: dict[str, BucketSync] = {}
        self._airflows: dict[tuple[str, str], Any] = {}
        self._plugins_synced: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}

    async def resolve(self, namespace: str, composer: ComposerTarget | None) -> Target:
        """The target of a policy in ``namespace``: its granted spec.composer, else the controller's default.

        Raises TargetNotAllowedError (before any request) for a spec.composer the tenancy map does not grant.
        """
        if composer is None:
            return await self.default()
        grant, auth = self.tenancy.grant(namespace, composer)
        if grant.environment is not None:
            # The URL comes from the Composer API, so the controller's Google identity may authenticate there.
            target = await self._from_environment(grant.environment, auth)
        else:
            assert grant.bucket is not None
            assert grant.airflow_uri is not None
            target = Target(grant.bucket, grant.airflow_uri, auth=auth)
        if self.config.has_default_target and (default := await self.default()).key == target.key:
            return default  # the default target by another name: one client, one set of credentials
        return target

    async def default(self) -> Target:
        """The controller's own target, with the credentials configured for it."""
        auth = self.config.airflow_auth
        if self.config.composer_environment:
            return await self._from_environment(self.config.composer_environment, auth)
        if self.config.bucket and self.config.airflow_url:
            return Target(self.config.bucket, airflow_url(self.config.airflow_url), auth=auth)
        raise TargetUnavailableError(
            "the controller has no default Composer target and the policy sets no spec.composer; set "
            "spec.composer, or configure the controller (Helm values composer.environment or composer.bucket)"
        )

    async def _from_environment(self, environment: str, auth: AirflowCredentials) -> Target:
        if environment not in self._environments:
            if self._resolve_environment is None:
                raise TargetUnavailableError(f"cannot look up Composer environment {environment!r}: no resolver")
            try:
                self._environments[environment] = await self._resolve_environment(environment)
            except TargetUnavailableError:
                raise
            except Exception as exc:
                raise TargetUnavailableError(f"cannot look up Composer environment {environment!r}: {exc}") from exc
        bucket, url = self._environments[environment]
        try:
            return Target(bucket, airflow_url(url), environment, auth=auth)
        except ValueError as exc:
            raise TargetUnavailableError(
                f"Composer environment {environment} reports an Airflow URL that {exc}"
            ) from None

    def bucket(self, target: Target) -> BucketSync:
        if target.bucket not in self._buckets:
            self._buckets[target.bucket] = BucketSync(target.bucket, self._storage_client)
        return self._buckets[target.bucket]

    def airflow(self, target: Target) -> Any:
        if target.key not in self._airflows:
            self._airflows[target.key] = self._airflow_factory(target)
        return self._airflows[target.key]

    async def ensure_plugins(self, target: Target) -> PluginSyncResult | None:
        """Sync our package, then the shared restore and drill DAGs' files that import it, to the target's bucket
        once per controller run (None: already done)."""
        from dags_templates.render_drill import SHARED_DRILL_DAG_FILE_ID, shared_drill_dag_source
        from dags_templates.render_restore import SHARED_DAG_FILE_ID, shared_restore_dag_source

        if target.bucket in self._plugins_synced:
            return None
        lock = self._locks.setdefault(target.bucket, asyncio.Lock())
        async with lock:
            if target.bucket in self._plugins_synced:
                return None
            sync = self.bucket(target)
            try:
                result = await asyncio.to_thread(sync.sync_plugins)
                await asyncio.to_thread(sync.upload_dag, SHARED_DAG_FILE_ID, shared_restore_dag_source())
                await asyncio.to_thread(sync.upload_dag, SHARED_DRILL_DAG_FILE_ID, shared_drill_dag_source())
            except Exception as exc:
                raise TargetUnavailableError(f"cannot sync plugins to gs://{target.bucket}: {exc}") from exc
            self._plugins_synced.add(target.bucket)
            return result

    async def close(self) -> None:
        for client in self._airflows.values():
            close = getattr(client, "close", None)
            if close is not None:
                await close()
        self._airflows.clear()
