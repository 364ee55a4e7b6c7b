"""Pointing the real ``google-cloud-compute`` client at the simulator.

Verified against google-cloud-compute's REST transport (``rest_base.py``): an ``api_endpoint`` that starts with
``http://`` keeps its scheme (the transport only prepends ``url_scheme``, default https, when the host has none), so

    compute_v1.InstancesClient(
        credentials=google.auth.credentials.AnonymousCredentials(),
        client_options={"api_endpoint": "http://127.0.0.1:PORT"},
    )

reaches the simulator over plain HTTP. ``compute_client_options(base_url)`` returns exactly that dict.

One trap: the ``ExtendedOperation`` returned by ``InstancesClient.stop()`` / ``DisksClient.create_snapshot()`` /
... polls through a ``ZoneOperationsClient`` (``GlobalOperationsClient`` for snapshots) that the transport builds
*without* the caller's client options, so ``op.result()`` / ``op.done()`` go to compute.googleapis.com, not to
the endpoint you configured. Either

- wait explicitly with a ``ZoneOperationsClient`` / ``GlobalOperationsClient`` built with the same options
  (``wait()`` long-polls; recommended for production code too), or
- build clients with ``compute_client(ClientClass, base_url)``, which also wires the transport's operation
  clients to the same endpoint so ``op.result()`` works (it sets the transport's private
  ``_extended_operations_services`` cache; checked against google-cloud-compute 1.x).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from google.auth.credentials import AnonymousCredentials

T = TypeVar("T")


def compute_client_options(base_url: str) -> dict[str, Any]:
    """``client_options`` for any ``compute_v1.*Client`` to talk to the simulator at ``base_url``."""
    return {"api_endpoint": base_url.rstrip("/")}


def compute_client(client_cls: Callable[..., T], base_url: str, **kwargs: Any) -> T:
    """``client_cls(credentials=Anonymous, client_options=...)`` whose extended operations also poll ``base_url``."""
    from google.cloud import compute_v1

    kwargs.setdefault("credentials", AnonymousCredentials())
    options = compute_client_options(base_url)
    client = client_cls(client_options=options, **kwargs)
    transport = getattr(client, "_transport", None)
    services = getattr(transport, "_extended_operations_services", None)
    if isinstance(services, dict):
        credentials = kwargs["credentials"]
        services["zone_operations"] = compute_v1.ZoneOperationsClient(credentials=credentials, client_options=options)
        services["global_operations"] = compute_v1.GlobalOperationsClient(
            credentials=credentials, client_options=options
        )
        services["region_operations"] = compute_v1.RegionOperationsClient(
            credentials=credentials, client_options=options
        )
    return client
