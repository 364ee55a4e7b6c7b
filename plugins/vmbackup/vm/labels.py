"""setLabels under labelFingerprint concurrency, for instances and disks: one call, told apart from a lost race.

Compute Engine refuses a setLabels whose fingerprint is stale with 412 conditionNotMet ("SetLabels" request
reference, https://cloud.google.com/compute/docs/reference/rest/v1/instances/setLabels); some versions answer 400
naming the fingerprint. Either means: someone changed the labels since we read them, read again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vmbackup.compute.hook import ComputeEngineHook, OperationRef

LABEL_TIMEOUT_SECONDS = 120


def _applied(call: Callable[[], OperationRef], hook: ComputeEngineHook) -> bool:
    """True when applied; False when the fingerprint was stale."""
    from google.api_core import exceptions as gexc

    try:
        hook.wait_done(call(), LABEL_TIMEOUT_SECONDS)
        return True
    except gexc.PreconditionFailed:
        return False
    except gexc.BadRequest as exc:
        if "fingerprint" in str(exc).lower():
            return False
        raise


def set_instance_labels(
    hook: ComputeEngineHook, project: str, zone: str, name: str, labels: dict[str, str], fingerprint: str
) -> bool:
    """The instance's labels become `labels`; False when they changed since `fingerprint` was read."""
    return _applied(lambda: hook.set_instance_labels(project, zone, name, labels, fingerprint), hook)


def set_disk_labels(
    hook: ComputeEngineHook, project: str, zone: str, name: str, labels: dict[str, str], fingerprint: str
) -> bool:
    """The disk's labels become `labels`; False when they changed since `fingerprint` was read."""
    return _applied(lambda: hook.set_disk_labels(project, zone, name, labels, fingerprint), hook)


def relabel_instance(
    hook: ComputeEngineHook,
    project: str,
    zone: str,
    name: str,
    change: Callable[[Any], dict[str, str] | None],
    attempts: int = 8,
) -> Any:
    """Read, `change` (the wanted labels, or None: nothing to do), set; again while the fingerprint was stale.

    Returns the instance as last read (None when it does not exist)."""
    for _ in range(attempts):
        instance = hook.find_instance(project, zone, name)
        if instance is None:
            return None
        wanted = change(instance)
        if wanted is None:
            return instance
        if set_instance_labels(hook, project, zone, name, wanted, instance.label_fingerprint):
            return hook.get_instance(project, zone, name)
    raise RuntimeError(f"could not relabel instance {name}: its labels kept changing")
