"""Per-call fault injection rules.

A ``Fault`` matches calls by API method ("instances.stop", "disks.createSnapshot", "zoneOperations.wait", ... or
"*"; shell-style globs such as "instances.*" work too) and optionally by the name of the resource in the path
(instance, disk, snapshot or operation name; globs allowed). Actions:

- ``http_error``: the call fails with ``status`` in Compute Engine's JSON error shape (403 ``rateLimitExceeded``,
  503 ``backendError``, 500 ``internalError`` ... ``reason`` and ``message`` are defaulted from the status). A
  ``rateLimitExceeded`` fault without a message answers the body of an exceeded rate quota (domain
  ``usageLimits``, ``ErrorInfo`` RATE_LIMIT_EXCEEDED; errors.py): Compute Engine answers 403, not 429 ("If your
  project exceeds a rate quota, you receive a 403 error with the reason rateLimitExceeded", "Compute Engine rate
  quotas", https://cloud.google.com/compute/api-quota).
- ``operation_error``: the call succeeds and returns an operation, which ends DONE with
  ``error.errors[0] = {code: error_code, message: message}`` and ``httpErrorStatusCode``; the resource does not
  change state (a snapshot goes to FAILED).
- ``slow``: the operation's main phase takes ``extra_seconds`` longer (scaled by the profile's ``time_scale``);
  for calls that start no operation the HTTP response is delayed instead.

``times`` is how many matching calls the rule applies to (None = every call): ``Fault.rate_limited("*", times=20)``
is a rate-limit storm of 20 calls in a row. ``after`` lets that many matching calls through first: a fault on the
second page of a list is ``Fault.rate_limited("snapshots.list", after=1)``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass
from typing import Any, Literal

FaultAction = Literal["http_error", "operation_error", "slow"]

HTTP_ERROR_DEFAULTS: dict[int, tuple[str, str]] = {
    400: ("badRequest", "Invalid request."),
    403: ("forbidden", "Required permission is missing."),
    404: ("notFound", "The resource was not found."),
    409: ("alreadyExists", "The resource already exists."),
    412: ("conditionNotMet", "Precondition failed."),
    429: ("rateLimitExceeded", "Rate Limit Exceeded"),
    500: ("internalError", "Internal error. Please try again or contact Google Support."),
    503: ("backendError", "The service is currently unavailable."),
}


@dataclass
class Fault:
    method: str = "*"
    action: FaultAction = "http_error"
    target: str | None = None
    status: int = 503
    reason: str | None = None
    message: str | None = None
    error_code: str = "INTERNAL_ERROR"
    extra_seconds: float = 0.0
    times: int | None = None
    after: int = 0  # matching calls let through before the rule applies
    id: str | None = None  # assigned by the simulator when injected

    # Convenience constructors -------------------------------------------------------------------------------
    @classmethod
    def rate_limited(cls, method: str = "*", *, times: int | None = 1, target: str | None = None) -> Fault:
        """An exceeded rate quota: 403 rateLimitExceeded, as Compute Engine answers it."""
        return cls(
            method=method, action="http_error", status=403, reason="rateLimitExceeded", target=target, times=times
        )

    @classmethod
    def backend_error(cls, method: str = "*", *, times: int | None = 1, target: str | None = None) -> Fault:
        return cls(method=method, action="http_error", status=503, target=target, times=times)

    @classmethod
    def internal_error(cls, method: str = "*", *, times: int | None = 1, target: str | None = None) -> Fault:
        return cls(method=method, action="http_error", status=500, target=target, times=times)

    @classmethod
    def http_error(
        cls,
        method: str,
        status: int,
        *,
        reason: str | None = None,
        message: str | None = None,
        times: int | None = 1,
        target: str | None = None,
    ) -> Fault:
        return cls(
            method=method,
            action="http_error",
            status=status,
            reason=reason,
            message=message,
            times=times,
            target=target,
        )

    @classmethod
    def operation_error(
        cls,
        method: str,
        code: str = "QUOTA_EXCEEDED",
        message: str = "Quota exceeded.",
        *,
        http_status: int = 403,
        times: int | None = 1,
        target: str | None = None,
    ) -> Fault:
        return cls(
            method=method,
            action="operation_error",
            error_code=code,
            message=message,
            status=http_status,
            times=times,
            target=target,
        )

    @classmethod
    def slow(cls, method: str, extra_seconds: float, *, times: int | None = 1, target: str | None = None) -> Fault:
        return cls(method=method, action="slow", extra_seconds=extra_seconds, times=times, target=target)

    # Matching and (de)serialisation ------------------------------------------------------------------------
    def matches(self, method: str, resource_name: str | None) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.method != "*" and not fnmatch.fnmatchcase(method, self.method):
            return False
        if self.target is None:
            return True
        return resource_name is not None and fnmatch.fnmatchcase(resource_name, self.target)

    def lets_through(self) -> bool:
        """True while matching calls are still to pass untouched (counts them down)."""
        if self.after > 0:
            self.after -= 1
            return True
        return False

    def consume(self) -> None:
        if self.times is not None:
            self.times -= 1

    def error_reason(self) -> str:
        return self.reason or HTTP_ERROR_DEFAULTS.get(self.status, ("backendError", ""))[0]

    def error_message(self) -> str:
        return self.message or HTTP_ERROR_DEFAULTS.get(self.status, ("", f"Error {self.status}"))[1]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        if data.get("action", "http_error") not in ("http_error", "operation_error", "slow"):
            raise ValueError(f"unknown fault action {data.get('action')!r}")
        return cls(**data)
