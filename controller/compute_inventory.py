"""The VMs of a project, from Compute Engine's ``instances.aggregatedList``: one call per page, each paid for first.

Behind :class:`InstanceLister` so the coverage scan and ``vmbackupctl coverage`` share the one real client (the
google-cloud-compute client; in tests and the local stack, against devstack/gce_simulator). Each page is one call
(https://cloud.google.com/compute/docs/reference/rest/v1/instances/aggregatedList: up to ``maxResults`` = 500
instances a page, ``nextPageToken`` while more remain), and each call first takes a token of the project's
``list_requests`` budget (plugins/vmbackup/compute/rate_budget.py), shared with the backup DAGs' calls when the
ledger is their bucket's.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from controller.coverage import Vm
from vmbackup.compute.rate_budget import ProcessLedger, RateBudget

ENDPOINT_ENV = "VMBACKUP_COMPUTE_ENDPOINT"  # plugins/vmbackup/settings.py reads the same variable
METHOD = "instances.aggregatedList"
PAGE_SIZE = 500  # the most the reference allows a page
REQUEST_TIMEOUT_SECONDS = 60.0
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


class InstanceLister(Protocol):
    def list_instances(self, project: str) -> list[Vm]:
        """Every instance of the project, in every zone."""
        ...


def compute_client_kwargs(endpoint: str | None) -> dict[str, Any]:
    """A compute_v1 client's credentials and endpoint: anonymous for an http:// simulator, else ADC."""
    from google.api_core.client_options import ClientOptions

    if endpoint and endpoint.startswith("http://"):
        from google.auth.credentials import AnonymousCredentials

        return {"credentials": AnonymousCredentials(), "client_options": ClientOptions(api_endpoint=endpoint)}
    import google.auth

    credentials, _ = google.auth.default(scopes=SCOPES)
    kwargs: dict[str, Any] = {"credentials": credentials}
    if endpoint:
        kwargs["client_options"] = ClientOptions(api_endpoint=endpoint)
    return kwargs


def default_endpoint() -> str | None:
    return os.environ.get(ENDPOINT_ENV) or None


class ComputeInstanceLister:
    """instances.aggregatedList through google-cloud-compute, page by page, within the rate budget."""

    def __init__(
        self,
        endpoint: str | None = None,
        budget: RateBudget | None = None,
        *,
        page_size: int = PAGE_SIZE,
        quota_window_seconds: float = 60.0,
    ) -> None:
        self.endpoint = endpoint
        self.budget = budget or RateBudget(ProcessLedger(), {}, quota_window_seconds)
        self.page_size = page_size
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from google.cloud import compute_v1

            self._client = compute_v1.InstancesClient(**compute_client_kwargs(self.endpoint))
        return self._client

    def list_instances(self, project: str) -> list[Vm]:
        from google.cloud import compute_v1

        request = compute_v1.AggregatedListInstancesRequest(project=project, max_results=self.page_size)
        found: list[Vm] = []
        while True:
            self.budget.take(project, METHOD)
            page = self.client.aggregated_list(request=request, timeout=REQUEST_TIMEOUT_SECONDS)
            for scoped in page.items.values():  # the pager holds this one response: zone -> InstancesScopedList
                found.extend(_vm(project, instance) for instance in scoped.instances)
            if not page.next_page_token:
                return found
            request.page_token = page.next_page_token


def _vm(project: str, instance: Any) -> Vm:
    zone = str(instance.zone).rstrip("/").rsplit("/", 1)[-1]
    return Vm(project, zone, instance.name, dict(instance.labels), instance.status)
