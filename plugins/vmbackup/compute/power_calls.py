"""Compute Engine calls of the VM layer (vm/) beyond stop and start: resume, the project-wide instance list, and
whether a zone offers a machine type or a GPU (accelerator) type.

A mixin of ComputeEngineHook (kept apart so the hook module stays within its size): every call goes through the
hook's bounded retry (`call`); a call that starts work returns the operation for the caller to wait on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from vmbackup.compute.compute_library import compute_v1

if TYPE_CHECKING:
    from vmbackup.compute.operations import OperationRef

T = TypeVar("T")


class _Calls(Protocol):
    page_size: int | None

    @property
    def instances(self) -> compute_v1.InstancesClient: ...

    @property
    def machine_types(self) -> compute_v1.MachineTypesClient: ...

    @property
    def accelerator_types(self) -> compute_v1.AcceleratorTypesClient: ...

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...


class PowerCalls:
    """instances.resume, instances.aggregatedList, machineTypes.get and acceleratorTypes.get."""

    def offers_machine_type(self: _Calls, project: str, zone: str, name: str) -> bool:
        """Whether the zone offers the machine type (machineTypes.get answers 404 for one it does not)."""
        from google.api_core import exceptions as gexc

        try:
            self.call("machineTypes.get", self.machine_types.get, project=project, zone=zone, machine_type=name)
        except gexc.NotFound:
            return False
        return True

    def offers_accelerator_type(self: _Calls, project: str, zone: str, name: str) -> bool:
        """Whether the zone offers the GPU type (types exist per zone; acceleratorTypes.get answers 404 for one it
        does not: https://cloud.google.com/compute/docs/reference/rest/v1/acceleratorTypes/get)."""
        from google.api_core import exceptions as gexc

        try:
            self.call(
                "acceleratorTypes.get", self.accelerator_types.get, project=project, zone=zone, accelerator_type=name
            )
        except gexc.NotFound:
            return False
        return True

    def resume_instance(self: _Calls, project: str, zone: str, name: str) -> OperationRef:
        """instances.resume: a SUSPENDED VM comes back with resume, not start ("Suspend and resume an instance",
        https://cloud.google.com/compute/docs/instances/suspend-resume-instance)."""
        from vmbackup.compute.operations import OperationRef

        op = self.call("instances.resume", self.instances.resume_unary, project=project, zone=zone, instance=name)
        return OperationRef(name=op.name, project=project, zone=zone)

    def aggregated_list_instances(self: _Calls, project: str, label_filter: str) -> list[compute_v1.Instance]:
        """Instances of every zone of the project matching a server-side filter, each page a call of its own."""
        request = compute_v1.AggregatedListInstancesRequest(project=project, filter=label_filter)
        if self.page_size:
            request.max_results = self.page_size
        found: list[compute_v1.Instance] = []
        while True:
            page = self.call("instances.aggregatedList", self.instances.aggregated_list, request=request)
            for scoped in page.items.values():  # a pager holding one response: zone -> InstancesScopedList
                found.extend(scoped.instances)
            if not page.next_page_token:
                return found
            request.page_token = page.next_page_token
