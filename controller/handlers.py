"""kopf wiring: which events of VMBackupPolicy objects call which Controller method.

Handlers are registered on a registry built per Controller (not kopf's global one), so the poll
interval from the configuration can shape the timer and tests can run several controllers.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from controller.reconciler import Controller
from controller.restore_handlers import register_restore_handlers
from vmbackup.model.policy import API_GROUP, API_VERSION, BACKUP_NOW_ANNOTATION, PLURAL, VERIFY_NOW_ANNOTATION

KOPF_PREFIX = "kopf.vmbackup.dev"
FINALIZER = "vmbackup.dev/dag-cleanup"


def configure_settings(settings: kopf.OperatorSettings) -> None:
    """Our own annotation prefix and finalizer; only our own Events, not one per handler log line."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    # The chart installs the CRDs before the controller starts and names the namespaces it watches, so
    # kopf needs no runtime observation of CRDs or namespaces, nor the RBAC for it: kopf's "restricted
    # mode" (kopf/_core/reactor/observation.py; docs.kopf.dev "Deployment" lists the RBAC it would need).
    # Without this, a least-privilege ServiceAccount gets 403 on customresourcedefinitions.
    settings.scanning.disabled = True
    settings.watching.server_timeout = 600  # reconnect periodically; a silent watch must not go stale
    settings.watching.client_timeout = 660


def build_registry(controller: Controller) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    resource: dict[str, Any] = {"group": API_GROUP, "version": API_VERSION, "plural": PLURAL, "registry": registry}

    @kopf.on.login(registry=registry)
    def login(settings: kopf.OperatorSettings, **kwargs: Any) -> kopf.ConnectionInfo | None:
        """In a pod: its service account; elsewhere: KUBECONFIG (no Kubernetes client library needed)."""
        return kopf.login_with_service_account(settings=settings, **kwargs) or kopf.login_with_kubeconfig(
            settings=settings, **kwargs
        )

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_settings(settings)  # the one place: kopf starts nothing that reads them before startup handlers
        await controller.start()
        if controller.coverage is not None:
            controller.coverage.start()  # kopf runs only on the leader, so the scan does too

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        try:
            if controller.coverage is not None:
                await controller.coverage.stop()
        finally:
            await controller.close()

    @kopf.on.resume(**resource, id="reconcile")
    @kopf.on.create(**resource, id="reconcile")
    @kopf.on.update(**resource, field="spec", id="reconcile")
    async def reconcile(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        await controller.reconcile(body, patch)

    @kopf.on.resume(**resource, annotations={BACKUP_NOW_ANNOTATION: kopf.PRESENT}, id="backup-now")
    @kopf.on.create(**resource, annotations={BACKUP_NOW_ANNOTATION: kopf.PRESENT}, id="backup-now")
    @kopf.on.update(**resource, annotations={BACKUP_NOW_ANNOTATION: kopf.PRESENT}, id="backup-now")
    async def backup_now(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        await controller.backup_now(body, patch)

    @kopf.on.resume(**resource, annotations={VERIFY_NOW_ANNOTATION: kopf.PRESENT}, id="verify-now")
    @kopf.on.create(**resource, annotations={VERIFY_NOW_ANNOTATION: kopf.PRESENT}, id="verify-now")
    @kopf.on.update(**resource, annotations={VERIFY_NOW_ANNOTATION: kopf.PRESENT}, id="verify-now")
    async def verify_now(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        state = controller.states.get((str(body.metadata.namespace), str(body.metadata.name)))
        await controller.drill_runs.requested(body, patch, state, controller.target_of(state))

    @kopf.on.delete(**resource, id="remove-dag")
    async def remove(body: kopf.Body, **_: Any) -> None:
        await controller.remove(body)

    @kopf.timer(**resource, interval=controller.config.poll_interval_seconds, id="refresh-status")
    async def refresh(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        await controller.refresh(body, patch)

    register_restore_handlers(registry, controller)  # VMRestores: controller/restore_handlers.py
    return registry
