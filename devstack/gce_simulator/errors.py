"""Compute Engine's JSON error shape and the error bodies the stricter behaviours answer with.

Kept apart from state.py so that the rule modules (quotas, snapshot_rules) can build errors without importing the
world. Sources, beside each builder:

- Rate quotas: "If your project exceeds a rate quota, you receive a 403 error with the reason rateLimitExceeded. To
  resolve this error, wait a minute then try your request again" ("Compute Engine rate quotas",
  https://cloud.google.com/compute/api-quota). The ``errors[0].domain`` ``usageLimits`` is the one Google shows for
  its 403 ``rateLimitExceeded`` ("Compute Engine concurrent operation quotas",
  https://cloud.google.com/compute/operations-quota). "If the quota is a rate quota, then 403 RATE_LIMIT_EXCEEDED is
  returned" ("Troubleshoot quota errors", https://cloud.google.com/docs/quotas/troubleshoot); the ``ErrorInfo``
  metadata keys (``consumer``, ``service``, ``quota_metric``, ``quota_limit``) follow google.rpc.ErrorReason
  ``RATE_LIMIT_EXCEEDED``'s documented example. NOT VERIFIED: the message text "Quota exceeded for quota metric
  '...' and limit '...' of service 'compute.googleapis.com' for consumer 'project_number:...'." is the wording
  Google's APIs print for rate quotas; the Compute Engine pages quoted above do not show it verbatim.
- Concurrent operations: the body Google shows on "Compute Engine concurrent operation quotas": code 403, message
  "Rate Limit Exceeded", ``errors[0]`` reason ``rateLimitExceeded`` domain ``usageLimits``, ``details[0]`` an
  ``ErrorInfo`` with reason ``CONCURRENT_OPERATIONS_QUOTA_EXCEEDED``, domain ``compute.googleapis.com`` and
  metadata ``containerType``/``containerId``/``quotaMetric``/``quotaLimit``/``operationType``/``location``, then a
  ``Help`` link to https://cloud.google.com/compute/operations-quota#concurrent_operation_limits .
- Busy resources: 400 ``resourceNotReady`` "The resource '...' is not ready" (reported:
  googleapis/google-api-python-client#485, kubernetes-sigs/gcp-compute-persistent-disk-csi-driver#482).
"""

from __future__ import annotations

from typing import Any

SERVICE = "compute.googleapis.com"


class ApiError(Exception):
    """An error answered in Compute Engine's JSON shape."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        domain: str = "global",
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.domain = domain
        self.details = details

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "errors": [{"message": self.message, "domain": self.domain, "reason": self.reason}],
        }
        if self.details:
            error["details"] = self.details
        return {"error": error}


def not_found(resource_path: str) -> ApiError:
    return ApiError(404, "notFound", f"The resource '{resource_path}' was not found")


def resource_not_ready(resource_path: str) -> ApiError:
    """A resource with an operation in flight (or RESTORING) refuses another mutation at once."""
    return ApiError(400, "resourceNotReady", f"The resource '{resource_path}' is not ready")


def rate_limit_exceeded(project: str, metric: str, limit_name: str) -> ApiError:
    """A rate quota group is used up for this window: 403 rateLimitExceeded (usageLimits), ErrorInfo attached."""
    message = (
        f"Quota exceeded for quota metric '{metric}' and limit '{limit_name}' of service '{SERVICE}' "
        f"for consumer 'project_number:{project_number(project)}'."
    )
    info = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "RATE_LIMIT_EXCEEDED",
        "domain": "googleapis.com",
        "metadata": {
            "consumer": f"projects/{project_number(project)}",
            "service": SERVICE,
            "quota_metric": metric,
            "quota_limit": limit_name,
        },
    }
    return ApiError(403, "rateLimitExceeded", message, domain="usageLimits", details=[info])


def concurrent_operations_exceeded(project: str, operation_type: str, location: str, limit: int) -> ApiError:
    """Too many operations in flight: the body "Compute Engine concurrent operation quotas" shows."""
    info = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "CONCURRENT_OPERATIONS_QUOTA_EXCEEDED",
        "domain": SERVICE,
        "metadata": {
            "containerType": "PROJECT",
            "containerId": project,
            "quotaMetric": f"{SERVICE}/{'global' if location == 'global' else 'regional'}_concurrent_operations",
            "quotaLimit": "ConcurrentOperationsPerProject",
            "limit": str(limit),
            "operationType": operation_type,
            "location": location,
        },
    }
    help_link = {
        "@type": "type.googleapis.com/google.rpc.Help",
        "links": [
            {
                "description": "Concurrent operations quota documentation.",
                "url": "https://cloud.google.com/compute/operations-quota#concurrent_operation_limits",
            }
        ],
    }
    return ApiError(403, "rateLimitExceeded", "Rate Limit Exceeded", domain="usageLimits", details=[info, help_link])


def project_number(project: str) -> int:
    """A stable fake project number (the simulator has no resource manager)."""
    return sum(ord(c) * 31**i for i, c in enumerate(project)) % 10**12


STOCKOUT_CODE = "ZONE_RESOURCE_POOL_EXHAUSTED"


def stockout_error(project: str, zone: str) -> tuple[int, str, str]:
    """The operation error of a start, resume or insert in a stocked-out zone (sources: power.py)."""
    message = (
        f"The zone 'projects/{project}/zones/{zone}' does not have enough resources available to fulfill the "
        "request. Try a different zone, or try again later."
    )
    return (503, STOCKOUT_CODE, message)
