"""What can go wrong asking Airflow: one family under :class:`AirflowCallError`, sorted into the kinds callers act on.

Two layers of the same family:

- what the REST client (controller/airflow_api.py, controller/airflow_auth.py) raises: :class:`AirflowUnavailable`
  (no answer: try again later) and :class:`AirflowError` (Airflow answered with a 4xx or 3xx; the message says why),
  with :class:`AirflowAuthError` and :class:`AirflowRedirectError` for the refusals that are configuration problems;
- what :class:`controller.airflow_link.AirflowControl` sorts them into for the reconciler and the restore handlers:
  :class:`AirflowUnreachableError`, :class:`DagNotFoundError` and :class:`AirflowRefusedError`.
"""

from __future__ import annotations


class AirflowCallError(Exception):
    """Anything that went wrong asking Airflow."""


# ---- what the REST client raises ----------------------------------------------------------------


class AirflowUnavailable(AirflowCallError):  # noqa: N818 - the name the controller and CLI use
    """Airflow could not be asked: connection refused, timeout, or a 5xx. Worth retrying later."""


class AirflowError(AirflowCallError):
    """Airflow answered with a 4xx; ``message`` is the server's own explanation."""

    def __init__(self, status: int, message: str, *, method: str = "", path: str = "") -> None:
        self.status = status
        self.message = message
        self.method = method
        self.path = path
        where = f" on {method} {path}" if method else ""
        super().__init__(f"Airflow refused the request{where} (HTTP {status}): {message}")


class AirflowAuthError(AirflowError):
    """The credentials were rejected (401/403): a configuration problem, not a transient one."""


class AirflowRedirectError(AirflowError):
    """Airflow answered with a redirect (3xx), which the client never follows: credentials stay on one origin.

    aiohttp would follow it, dropping the Authorization header only for another origin but re-sending a 307/308's
    body (the username and password of ``POST /auth/token``) to wherever the Location points.
    """

    def __init__(self, status: int, location: str, *, base_url: str, method: str, path: str) -> None:
        self.location = location
        super().__init__(
            status,
            f"Airflow at {base_url} redirects to {location or 'an unnamed location'}; the controller follows no "
            "redirect, so its credentials never leave the target's address: configure the address that answers "
            "itself (the tenancy map's airflowUri, or VMBACKUP_AIRFLOW_URL)",
            method=method,
            path=path,
        )


# ---- the kinds the reconciler and the restore handlers act on (controller/airflow_link.py sorts into them) ----


class AirflowUnreachableError(AirflowCallError, RuntimeError):
    """Airflow did not answer (network, 5xx) or refused our credentials: try again at the next poll."""


class DagNotFoundError(AirflowCallError, LookupError):
    """Airflow does not know the DAG yet (not parsed since the upload): try again later."""


class AirflowRefusedError(AirflowCallError, RuntimeError):
    """Airflow answered and refused the request (a 4xx other than 404); the message says why."""
