"""Which Compute Engine errors are worth waiting out, and how long: the hook's one retry policy.

Two kinds of transient failure, waited out differently:

- 429, 5xx and connection errors: capped exponential backoff with full jitter, a bounded number of attempts.
- Quota and busy-resource refusals, waited out to the next quota-window boundary plus jitter, within a deadline
  spanning several windows:
  - 403 ``rateLimitExceeded``: "Google enforces rate quotas at a per-minute interval for each group. [...] if a
    project reaches a quota limit at 10:00:15, the quota refills at the start of the next synchronized interval,
    such as 10:01:00 [...] If your project exceeds a rate quota, you receive a 403 error with the reason
    rateLimitExceeded" ("Compute Engine rate quotas", https://cloud.google.com/compute/api-quota).
  - 403 ``rateLimitExceeded`` whose ErrorInfo reason is ``CONCURRENT_OPERATIONS_QUOTA_EXCEEDED``: too many
    operations in flight ("Compute Engine concurrent operation quotas",
    https://cloud.google.com/compute/operations-quota); they end within minutes, so the same wait fits.
  - 400 ``resourceNotReady``: a second operation on a resource still busy with one (reported:
    googleapis/google-api-python-client#485, kubernetes-sigs/gcp-compute-persistent-disk-csi-driver#482).

Any other 403 (a missing permission) or 400 fails at once with Compute Engine's message. google-api-core maps a
403 to ``Forbidden`` and a 400 to ``BadRequest``; the JSON error's ``errors[].reason`` is in ``exc.errors`` and the
first ``google.rpc.ErrorInfo`` detail's reason in ``exc.reason`` (``format_http_response_error``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from google.api_core import exceptions as gexc

log = logging.getLogger(__name__)

T = TypeVar("T")

RATE_LIMIT_EXCEEDED = "rateLimitExceeded"
CONCURRENT_OPERATIONS = "CONCURRENT_OPERATIONS_QUOTA_EXCEEDED"
RESOURCE_NOT_READY = "resourceNotReady"


def _backoff_errors() -> tuple[type[BaseException], ...]:
    import requests
    from google.auth import exceptions as auth_exceptions

    return (
        gexc.TooManyRequests,
        gexc.InternalServerError,
        gexc.BadGateway,
        gexc.ServiceUnavailable,
        gexc.GatewayTimeout,
        requests.exceptions.ConnectionError,
        auth_exceptions.TransportError,
    )


def _error_reasons(exc: gexc.GoogleAPICallError) -> set[str]:
    """The ``errors[].reason`` of a JSON error and its ErrorInfo reason."""
    reasons = {str(e.get("reason")) for e in exc.errors if isinstance(e, dict) and e.get("reason")}
    if exc.reason:
        reasons.add(str(exc.reason))
    return reasons


def quota_refusal(exc: BaseException) -> str | None:
    """The reason a call was refused for a quota or a busy resource (waited out to the next window), else None."""
    if isinstance(exc, gexc.Forbidden):
        reasons = _error_reasons(exc)
        if CONCURRENT_OPERATIONS in reasons:
            return CONCURRENT_OPERATIONS
        if RATE_LIMIT_EXCEEDED in reasons or "RATE_LIMIT_EXCEEDED" in reasons:
            return RATE_LIMIT_EXCEEDED
    if isinstance(exc, gexc.BadRequest) and RESOURCE_NOT_READY in _error_reasons(exc):
        return RESOURCE_NOT_READY
    return None


def seconds_to_window_end(now: float, window_seconds: float) -> float:
    """Seconds from `now` (epoch seconds) to the next window boundary: quotas refill on the clock's minute."""
    return window_seconds - (now % window_seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """How one call is retried (AirflowSettings holds the defaults)."""

    max_attempts: int = 6  # attempts on 429, 5xx and connection errors
    backoff_base_seconds: float = 1.0
    backoff_cap_seconds: float = 30.0
    quota_window_seconds: float = 60.0  # Compute Engine's rate-quota interval
    quota_deadline_seconds: float = 300.0  # how long quota refusals are waited out, from the first one
    quota_jitter_fraction: float = 0.1  # of a window, added at random so waiting callers do not return together

    def quota_delay(self, now: float) -> float:
        window = self.quota_window_seconds
        return seconds_to_window_end(now, window) + random.uniform(0, window * self.quota_jitter_fraction)

    def run(
        self, what: str, fn: Callable[..., T], *args: Any, before: Callable[[], None] | None = None, **kwargs: Any
    ) -> T:
        """Run `fn`, retrying transient failures; `before` runs before each attempt (the rate budget's turn)."""
        backoff = _backoff_errors()
        attempt = 0
        quota_deadline: float | None = None
        while True:
            if before is not None:
                before()
            try:
                return fn(*args, **kwargs)
            except backoff as exc:
                attempt += 1
                if attempt >= self.max_attempts:
                    raise
                delay = random.uniform(0, min(self.backoff_cap_seconds, self.backoff_base_seconds * 2 ** (attempt - 1)))
                log.warning("%s failed (%s); retry %d/%d in %.2fs", what, exc, attempt, self.max_attempts - 1, delay)
            except (gexc.Forbidden, gexc.BadRequest) as exc:
                refusal = quota_refusal(exc)
                if refusal is None:
                    raise
                now = time.time()
                quota_deadline = quota_deadline if quota_deadline is not None else now + self.quota_deadline_seconds
                delay = self.quota_delay(now)
                if now + delay > quota_deadline:
                    raise
                log.warning("%s refused (%s: %s); retry in %.2fs, at the next quota window", what, refusal, exc, delay)
            time.sleep(delay)
