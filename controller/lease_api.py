"""The Lease on the Kubernetes API, through the official client (its calls run in a worker thread).

The client logs in as kopf does: the pod's service account in a cluster, else the kubeconfig. Its requests
carry their own User-Agent so that tests/fixtures/rbac.py checks them against the chart's Role.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from controller.leader import LeaseRecord, ObservedLease

LEASE_USER_AGENT = "vmbackup-controller/leader-election"
LEASE_GROUP = "coordination.k8s.io"
LEASE_API_VERSION = f"{LEASE_GROUP}/v1"


class LeaseConflictError(Exception):
    """409: the Lease exists already, or changed since it was read (someone else wrote it)."""


class KubernetesLeaseApi:
    """One named Lease in one namespace (the LeaseApi the elector uses)."""

    def __init__(self, name: str, namespace: str, api_client: k8s.ApiClient, *, timeout: float) -> None:
        self.name = name
        self.namespace = namespace
        self.timeout = timeout  # per request: an attempt must not outlive the renew deadline
        self._api = k8s.CoordinationV1Api(api_client)

    @classmethod
    def connect(cls, name: str, namespace: str, *, timeout: float, kubeconfig: str | None = None) -> KubernetesLeaseApi:
        """In a pod its service account, else KUBECONFIG (or ~/.kube/config), as kopf logs in; a named kubeconfig
        wins. No retries inside the client: the elector retries every retry period."""
        configuration = k8s.Configuration()
        try:
            if kubeconfig is None:
                k8s_config.load_incluster_config(client_configuration=configuration)
            else:
                k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        except ConfigException:
            k8s_config.load_kube_config(client_configuration=configuration)
        configuration.retries = 0
        api_client = k8s.ApiClient(configuration)
        api_client.user_agent = LEASE_USER_AGENT
        return cls(name, namespace, api_client, timeout=timeout)

    async def get(self) -> ObservedLease | None:
        try:
            return await self._call(self._api.read_namespaced_lease, self.name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, record: LeaseRecord) -> ObservedLease:
        body = self._body(record, {"name": self.name, "namespace": self.namespace})
        return await self._call(self._api.create_namespaced_lease, self.namespace, body)

    async def update(self, record: LeaseRecord, previous: ObservedLease) -> ObservedLease:
        """PUT with the metadata read before (its resourceVersion): the API server refuses a stale one."""
        body = self._body(record, dict(previous.metadata))
        return await self._call(self._api.replace_namespaced_lease, self.name, self.namespace, body)

    def _body(self, record: LeaseRecord, metadata: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": LEASE_API_VERSION, "kind": "Lease", "metadata": metadata, "spec": record.to_spec()}

    async def _call(self, method: Callable[..., Any], *args: Any) -> ObservedLease:
        try:
            response = await asyncio.to_thread(method, *args, _preload_content=False, _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status == 409:
                raise LeaseConflictError(f"Lease {self.namespace}/{self.name}: {exc.reason}") from None
            raise
        lease = json.loads(response.data)
        return ObservedLease(LeaseRecord.from_spec(lease.get("spec") or {}), lease.get("metadata") or {})
