"""Compute Engine access for the DAG's tasks: google-cloud-compute clients with bounded, jittered retries.

Clients are created lazily, once per hook, and a hook is created inside a task's execute(): never at DAG
parse time and never in an operator's __init__, so parsing a DAG makes no network call. Every Compute
Engine call of the workflows (backup and restore, tasks and triggers) is a method here, as in the Airflow
Google provider. The endpoint is overridable (AirflowSettings.compute_endpoint) for the project's Compute
Engine simulator; an http:// endpoint gets anonymous credentials, anything else uses Application Default
Credentials.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from functools import cached_property
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions

from vmbackup.compute.attachments import DiskAttachmentCalls
from vmbackup.compute.compute_library import compute_v1
from vmbackup.compute.instant_snapshot_calls import InstantSnapshotCalls
from vmbackup.compute.operations import (
    INSTANT,
    READY,
    STANDARD,
    TAKEN,
    OperationFailedError,
    OperationRef,
    SnapshotFailedError,
    as_operation_ref,
    is_done,
    operation_error,
    pending_snapshots,
    resource_name,
)
from vmbackup.compute.power_calls import PowerCalls
from vmbackup.compute.rate_budget import RateBudget, budget_for
from vmbackup.compute.retries import RetryPolicy
from vmbackup.compute.snapshot_calls import SnapshotCalls
from vmbackup.compute.snapshot_states import SnapshotStates
from vmbackup.settings import AirflowSettings

log = logging.getLogger(__name__)

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
STOPPED_STATUSES = ("TERMINATED", "STOPPED", "SUSPENDED")  # an instance in one of these is not running
STOPPING_STATUSES = ("PENDING_STOP", "STOPPING", "SUSPENDING")  # Compute Engine refuses a start until these end

T = TypeVar("T")

__all__ = [
    "INSTANT",
    "READY",
    "STANDARD",
    "STOPPED_STATUSES",
    "STOPPING_STATUSES",
    "TAKEN",
    "ComputeEngineHook",
    "OperationFailedError",
    "OperationRef",
    "SnapshotFailedError",
    "as_operation_ref",
    "is_done",
    "operation_error",
    "pending_snapshots",
    "resource_name",
]


class ComputeEngineHook(DiskAttachmentCalls, InstantSnapshotCalls, PowerCalls, SnapshotCalls, SnapshotStates):
    """The Compute Engine calls the workflows make, each retried on 429, 5xx and connection errors, and waited out
    to the next quota window on a quota or busy-resource refusal (compute/retries.py; attach and detach calls in
    compute/attachments.py, resume and aggregatedList in compute/power_calls.py, snapshots in compute/snapshot_calls.py)."""

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        max_attempts: int | None = None,
        backoff_base_seconds: float | None = None,
        backoff_cap_seconds: float = 30.0,
        page_size: int | None = None,
        settings: AirflowSettings | None = None,
        budget: RateBudget | None = None,
    ):
        settings = settings or AirflowSettings.from_env()
        self.endpoint = endpoint if endpoint is not None else settings.compute_endpoint
        self.retry = RetryPolicy(
            max_attempts=max_attempts or settings.compute_retry_attempts,
            backoff_base_seconds=(
                backoff_base_seconds if backoff_base_seconds is not None else settings.compute_retry_base_seconds
            ),
            backoff_cap_seconds=backoff_cap_seconds,
            quota_window_seconds=settings.quota_window_seconds,
            quota_deadline_seconds=settings.quota_deadline_seconds,
        )
        self.budget = budget if budget is not None else budget_for(settings)
        self.page_size = page_size  # maxResults of list calls; None: Compute Engine's default (500)
        self._done_operations: dict[
            str, compute_v1.Operation
        ] = {}  # a DONE operation never changes (snapshot_states.py)

    # -- clients ---------------------------------------------------------------------------------------

    @cached_property
    def _client_kwargs(self) -> dict[str, Any]:
        if self.endpoint and self.endpoint.startswith("http://"):
            from google.auth.credentials import AnonymousCredentials

            return {"credentials": AnonymousCredentials(), "client_options": ClientOptions(api_endpoint=self.endpoint)}
        import google.auth

        credentials, _ = google.auth.default(scopes=SCOPES)
        kwargs: dict[str, Any] = {"credentials": credentials}
        if self.endpoint:
            kwargs["client_options"] = ClientOptions(api_endpoint=self.endpoint)
        return kwargs

    @cached_property
    def instances(self) -> compute_v1.InstancesClient:
        return compute_v1.InstancesClient(**self._client_kwargs)

    @cached_property
    def machine_types(self) -> compute_v1.MachineTypesClient:
        return compute_v1.MachineTypesClient(**self._client_kwargs)

    @cached_property
    def accelerator_types(self) -> compute_v1.AcceleratorTypesClient:
        return compute_v1.AcceleratorTypesClient(**self._client_kwargs)

    @cached_property
    def disks(self) -> compute_v1.DisksClient:
        return compute_v1.DisksClient(**self._client_kwargs)

    @cached_property
    def snapshots(self) -> compute_v1.SnapshotsClient:
        return compute_v1.SnapshotsClient(**self._client_kwargs)

    @cached_property
    def instant_snapshots(self) -> compute_v1.InstantSnapshotsClient:
        return compute_v1.InstantSnapshotsClient(**self._client_kwargs)

    @cached_property
    def region_instant_snapshots(self) -> compute_v1.RegionInstantSnapshotsClient:
        return compute_v1.RegionInstantSnapshotsClient(**self._client_kwargs)

    @cached_property
    def region_operations(self) -> compute_v1.RegionOperationsClient:
        return compute_v1.RegionOperationsClient(**self._client_kwargs)

    @cached_property
    def zone_operations(self) -> compute_v1.ZoneOperationsClient:
        return compute_v1.ZoneOperationsClient(**self._client_kwargs)

    @cached_property
    def global_operations(self) -> compute_v1.GlobalOperationsClient:
        return compute_v1.GlobalOperationsClient(**self._client_kwargs)

    # -- retries ---------------------------------------------------------------------------------------

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one API call under the hook's retry policy (compute/retries.py), each attempt within the project's
        rate budget of the method's quota group (compute/rate_budget.py)."""
        if getattr(fn, "__module__", "").startswith("google.cloud.compute_v1"):
            # The client's own default retry (up to 10 minutes on 503 for GETs) would hide ours: one bounded policy.
            kwargs.setdefault("retry", None)
        project = kwargs.get("project") or getattr(kwargs.get("request"), "project", None)
        if not project:
            return self.retry.run(what, fn, *args, **kwargs)
        return self.retry.run(what, fn, *args, before=lambda: self.budget.take(str(project), what), **kwargs)

    def _every_page(self, what: str, method: Callable[..., Any], request: Any) -> list[Any]:
        """Every item of a list call, each page fetched (and retried) as a call of its own.

        Iterating the client's pager would fetch later pages with the first call's retry setting (none, see
        call()), so a 429 on page 2 would fail the task instead of being ridden out.
        """
        if self.page_size:
            request.max_results = self.page_size
        items: list[Any] = []
        while True:
            page = self.call(what, method, request=request)  # a pager holding one response
            items.extend(page.items)
            if not page.next_page_token:
                return items
            request.page_token = page.next_page_token

    # -- instances -------------------------------------------------------------------------------------

    def get_instance(self, project: str, zone: str, name: str) -> compute_v1.Instance:
        return self.call("instances.get", self.instances.get, project=project, zone=zone, instance=name)

    def find_instance(self, project: str, zone: str, name: str) -> compute_v1.Instance | None:
        try:
            return self.get_instance(project, zone, name)
        except gexc.NotFound:
            return None

    def list_instances(
        self, project: str, zones: Iterable[str], match_labels: dict[str, str]
    ) -> list[compute_v1.Instance]:
        """Instances carrying every label, zone by zone (a per-zone list with a server-side filter)."""
        label_filter = " AND ".join(f"(labels.{k} = {v})" for k, v in sorted(match_labels.items()))
        found: list[compute_v1.Instance] = []
        for zone in zones:
            request = compute_v1.ListInstancesRequest(project=project, zone=zone, filter=label_filter)
            listed = self._every_page("instances.list", self.instances.list, request)
            # The filter is applied again locally: correctness must not depend on the server's filter support.
            found.extend(inst for inst in listed if all(inst.labels.get(k) == v for k, v in match_labels.items()))
        return found

    def list_disks(self, project: str, zone: str, match_labels: dict[str, str]) -> list[compute_v1.Disk]:
        """Disks of a zone carrying every label (filtered by the server, and again here)."""
        label_filter = " AND ".join(f"(labels.{k} = {v})" for k, v in sorted(match_labels.items()))
        request = compute_v1.ListDisksRequest(project=project, zone=zone, filter=label_filter)
        listed = self._every_page("disks.list", self.disks.list, request)
        return [disk for disk in listed if all(disk.labels.get(k) == v for k, v in match_labels.items())]

    def stop_instance(
        self,
        project: str,
        zone: str,
        name: str,
        *,
        discard_local_ssd: bool | None = None,
        no_graceful_shutdown: bool | None = None,
    ) -> OperationRef:
        """instances.stop; a VM with a Local SSD needs discard_local_ssd (StopInstanceRequest.discard_local_ssd)."""
        request = compute_v1.StopInstanceRequest(project=project, zone=zone, instance=name)
        if discard_local_ssd is not None:
            request.discard_local_ssd = discard_local_ssd
        if no_graceful_shutdown is not None:
            request.no_graceful_shutdown = no_graceful_shutdown
        op = self.call("instances.stop", self.instances.stop_unary, request=request)
        return OperationRef(name=op.name, project=project, zone=zone)

    def start_instance(self, project: str, zone: str, name: str) -> OperationRef:
        op = self.call("instances.start", self.instances.start_unary, project=project, zone=zone, instance=name)
        return OperationRef(name=op.name, project=project, zone=zone)

    def set_instance_labels(
        self, project: str, zone: str, name: str, labels: dict[str, str], fingerprint: str
    ) -> OperationRef:
        """setLabels with the fingerprint read before: Compute Engine refuses it (412) if labels changed since."""
        body = compute_v1.InstancesSetLabelsRequest(labels=labels, label_fingerprint=fingerprint)
        op = self.call(
            "instances.setLabels",
            self.instances.set_labels_unary,
            project=project,
            zone=zone,
            instance=name,
            instances_set_labels_request_resource=body,
        )
        return OperationRef(name=op.name, project=project, zone=zone)

    def insert_instance(self, project: str, zone: str, instance: compute_v1.Instance) -> OperationRef | None:
        """Start creating an instance; None when one of that name already exists."""
        try:
            op = self.call(
                "instances.insert", self.instances.insert_unary, project=project, zone=zone, instance_resource=instance
            )
        except gexc.Conflict:
            return None
        return OperationRef(name=op.name, project=project, zone=zone)

    def delete_instance(self, project: str, zone: str, name: str) -> OperationRef | None:
        """Start deleting an instance; None when it is already gone."""
        try:
            op = self.call("instances.delete", self.instances.delete_unary, project=project, zone=zone, instance=name)
        except gexc.NotFound:
            return None
        return OperationRef(name=op.name, project=project, zone=zone)

    def serial_port_output(self, project: str, zone: str, name: str, port: int) -> compute_v1.SerialPortOutput:
        request = compute_v1.GetSerialPortOutputInstanceRequest(project=project, zone=zone, instance=name, port=port)
        return self.call("instances.getSerialPortOutput", self.instances.get_serial_port_output, request=request)

    # -- disks -----------------------------------------------------------------------------------------

    def find_disk(self, project: str, zone: str, name: str) -> compute_v1.Disk | None:
        try:
            return self.call("disks.get", self.disks.get, project=project, zone=zone, disk=name)
        except gexc.NotFound:
            return None

    def insert_disk(self, project: str, zone: str, disk: compute_v1.Disk) -> OperationRef | None:
        """Start creating a disk; None when one of that name already exists (the caller checks whose it is)."""
        try:
            op = self.call("disks.insert", self.disks.insert_unary, project=project, zone=zone, disk_resource=disk)
        except gexc.Conflict:
            return None
        return OperationRef(name=op.name, project=project, zone=zone)

    def delete_disk(self, project: str, zone: str, name: str) -> OperationRef | None:
        try:
            op = self.call("disks.delete", self.disks.delete_unary, project=project, zone=zone, disk=name)
        except gexc.NotFound:
            return None
        return OperationRef(name=op.name, project=project, zone=zone)

    # -- operations ------------------------------------------------------------------------------------

    def get_operation(self, ref: OperationRef) -> compute_v1.Operation:
        if ref.get("region"):
            return self.call(
                "regionOperations.get",
                self.region_operations.get,
                project=ref["project"],
                region=ref["region"],
                operation=ref["name"],
            )
        if ref["zone"]:
            return self.call(
                "zoneOperations.get",
                self.zone_operations.get,
                project=ref["project"],
                zone=ref["zone"],
                operation=ref["name"],
            )
        return self.call(
            "globalOperations.get", self.global_operations.get, project=ref["project"], operation=ref["name"]
        )

    def wait_operation(self, ref: OperationRef, timeout_seconds: float) -> compute_v1.Operation:
        """Long-poll `operations.wait`: returns when the operation is DONE or the server's wait (or ours) ends.

        The returned operation may still be running; callers check is_done().
        """
        import requests

        bounded = max(1.0, min(timeout_seconds, 120.0))
        try:
            if ref.get("region"):
                return self.call(
                    "regionOperations.wait",
                    self.region_operations.wait,
                    project=ref["project"],
                    region=ref["region"],
                    operation=ref["name"],
                    timeout=bounded,
                )
            if ref["zone"]:
                return self.call(
                    "zoneOperations.wait",
                    self.zone_operations.wait,
                    project=ref["project"],
                    zone=ref["zone"],
                    operation=ref["name"],
                    timeout=bounded,
                )
            return self.call(
                "globalOperations.wait",
                self.global_operations.wait,
                project=ref["project"],
                operation=ref["name"],
                timeout=bounded,
            )
        except (requests.exceptions.Timeout, gexc.DeadlineExceeded):
            return self.get_operation(ref)

    def wait_done(self, ref: OperationRef, timeout_seconds: float) -> compute_v1.Operation:
        """Wait (long-poll, repeatedly) until DONE or the deadline; raise OperationFailed on an error."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            op = self.wait_operation(ref, deadline - time.monotonic())
            if is_done(op):
                error = operation_error(op)
                if error:
                    raise OperationFailedError(f"operation {ref['name']} failed: {error}")
                return op
            if time.monotonic() >= deadline:
                raise TimeoutError(f"operation {ref['name']} not done after {timeout_seconds:.0f}s")
