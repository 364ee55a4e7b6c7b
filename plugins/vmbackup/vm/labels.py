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


def relabeled(instance: Any, labels: dict[str, str]) -> Any:
    """The instance as a setLabels just left it, without reading it again (calls count against rate quotas): its
    labels are `labels`; its labelFingerprint changed and is not known, so it is emptied, and a relabel given this
    object reads the instance first."""
    after = type(instance)(instance)
    after.labels.clear()
    after.labels.update(labels)
    after.label_fingerprint = ""
    return after


def relabel_instance(
    hook: ComputeEngineHook,
    project: str,
    zone: str,
    name: str,
    change: Callable[[Any], dict[str, str] | None],
    attempts: int = 8,
    *,
    instance: Any = None,
) -> Any:
    """Read, `change` (the wanted labels, or None: nothing to do), set; again while the fingerprint was stale.

    `instance`: the VM as the caller last read it; its fingerprint is tried first, and a stale one costs one read.
    Returns the instance as last read, with the labels set (`relabeled`); None when it does not exist."""
    known = instance if instance is not None and instance.label_fingerprint else None
    for _ in range(attempts):
        current = known if known is not None else hook.find_instance(project, zone, name)
        known = None
        if current is None:
            return None
        wanted = change(current)
        if wanted is None:
            return current
        if set_instance_labels(hook, project, zone, name, wanted, current.label_fingerprint):
            return relabeled(current, wanted)
    raise RuntimeError(f"could not relabel instance {name}: its labels kept changing")
