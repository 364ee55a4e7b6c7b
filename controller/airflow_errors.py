"""What can go wrong asking Airflow, sorted into the kinds the caller acts on differently."""

from __future__ import annotations


class AirflowUnavailable(Exception):  # noqa: N818 - the name the controller and CLI use
    """Airflow could not be asked: connection refused, timeout, or a 5xx. Worth retrying later."""


class AirflowError(Exception):
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
