"""Compute Engine calls that change which disks a VM has (in-place restores): attach, detach, disk labels.

A mixin of ComputeEngineHook (kept apart so the hook module stays one role per file): every call goes through the
hook's bounded retry (`call`) and returns the operation for the caller to wait on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from vmbackup.compute.compute_library import compute_v1

if TYPE_CHECKING:
    from vmbackup.compute.operations import OperationRef

T = TypeVar("T")


class _Calls(Protocol):
    @property
    def instances(self) -> compute_v1.InstancesClient: ...

    @property
    def disks(self) -> compute_v1.DisksClient: ...

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...


class DiskAttachmentCalls:
    """instances.attachDisk / instances.detachDisk / disks.setLabels, each answering an operation reference."""

    def attach_disk(
        self: _Calls,
        project: str,
        zone: str,
        instance: str,
        disk: str,
        *,
        device_name: str,
        boot: bool,
        auto_delete: bool,
    ) -> OperationRef:
        """Attach a zonal disk READ_WRITE; Compute Engine refuses a boot disk unless the VM is TERMINATED."""
        attached = compute_v1.AttachedDisk(
            source=f"projects/{project}/zones/{zone}/disks/{disk}",
            device_name=device_name,
            boot=boot,
            auto_delete=auto_delete,
            mode="READ_WRITE",
            type_="PERSISTENT",
        )
        op = self.call(
            "instances.attachDisk",
            self.instances.attach_disk_unary,
            project=project,
            zone=zone,
            instance=instance,
            attached_disk_resource=attached,
        )
        return {"name": op.name, "project": project, "zone": zone}

    def detach_disk(self: _Calls, project: str, zone: str, instance: str, device_name: str) -> OperationRef:
        op = self.call(
            "instances.detachDisk",
            self.instances.detach_disk_unary,
            project=project,
            zone=zone,
            instance=instance,
            device_name=device_name,
        )
        return {"name": op.name, "project": project, "zone": zone}

    def set_disk_labels(
        self: _Calls, project: str, zone: str, disk: str, labels: dict[str, str], fingerprint: str
    ) -> OperationRef:
        """setLabels with the fingerprint read before (412 when the labels changed since)."""
        body = compute_v1.ZoneSetLabelsRequest(labels=labels, label_fingerprint=fingerprint)
        op = self.call(
            "disks.setLabels",
            self.disks.set_labels_unary,
            project=project,
            zone=zone,
            resource=disk,
            zone_set_labels_request_resource=body,
        )
        return {"name": op.name, "project": project, "zone": zone}
