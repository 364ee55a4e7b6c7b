"""How the controller authenticates to the Airflow REST API: one strategy per configured mode.

Google (Cloud Composer, Application Default Credentials), basic (Airflow 2), JWT (Airflow 3) and none.
A strategy adds its headers to each request and may refresh once after a 401.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

import aiohttp

from controller.airflow_errors import AirflowAuthError, AirflowError, AirflowUnavailable


class RestRequester(Protocol):
    """What an auth needs of the REST client (airflow_api.AirflowClient): one unauthenticated request, e.g. for a
    token. A protocol, so the client and its auths do not import each other."""

    async def raw_request(self, method: str, path: str, *, json_body: Any = None, authenticated: bool = True) -> Any:
        """One request to Airflow's REST API."""


GOOGLE_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


class AirflowAuth(abc.ABC):
    """Adds credentials to requests; ``refresh`` is called once after a 401 before giving up."""

    @abc.abstractmethod
    async def headers(self, client: RestRequester) -> dict[str, str]: ...

    async def refresh(self, client: RestRequester) -> bool:
        """Obtain fresh credentials; False when there is nothing to refresh (the 401 is final)."""
        return False


class NoAuth(AirflowAuth):
    """For an Airflow that trusts its network (e.g. SimpleAuthManager with all_admins)."""

    async def headers(self, client: RestRequester) -> dict[str, str]:
        return {}


class BasicAuth(AirflowAuth):
    """Airflow 2 with ``[api] auth_backends = airflow.api.auth.backend.basic_auth``."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self._header = aiohttp.BasicAuth(username, password).encode()

    async def headers(self, client: RestRequester) -> dict[str, str]:
        return {"Authorization": self._header}


class JwtAuth(AirflowAuth):
    """Airflow 3: a bearer token from ``POST /auth/token``, fetched again when it expires (401).

    A fixed ``token`` can be given instead of (or before) a username and password; without a
    password it cannot be renewed, so an expired fixed token ends in :class:`AirflowAuthError`.
    """

    def __init__(self, username: str | None = None, password: str | None = None, *, token: str | None = None) -> None:
        if token is None and not (username and password):
            raise ValueError("JwtAuth needs a token, or a username and password to obtain one")
        self.username = username
        self._password = password
        self._token = token
        self._lock = asyncio.Lock()

    async def headers(self, client: RestRequester) -> dict[str, str]:
        if self._token is None:
            async with self._lock:
                if self._token is None:
                    self._token = await self._fetch(client)
        return {"Authorization": f"Bearer {self._token}"}

    async def refresh(self, client: RestRequester) -> bool:
        if not (self.username and self._password):
            return False
        async with self._lock:
            self._token = await self._fetch(client)
        return True

    async def _fetch(self, client: RestRequester) -> str:
        body = {"username": self.username, "password": self._password}
        try:
            data = await client.raw_request("POST", "/auth/token", json_body=body, authenticated=False)
        except AirflowAuthError as exc:
            raise AirflowAuthError(
                exc.status,
                f"Airflow rejected the username and password of user {self.username!r} ({exc.message}); "
                "check the configured Airflow credentials",
                method="POST",
                path="/auth/token",
            ) from None
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str):
            raise AirflowError(
                500, "POST /auth/token answered without an access_token", method="POST", path="/auth/token"
            )
        return token


class GoogleAuth(AirflowAuth):
    """Cloud Composer: an OAuth access token from Application Default Credentials (workload identity)."""

    def __init__(self, scopes: Sequence[str] = GOOGLE_SCOPES) -> None:
        self._scopes = list(scopes)
        self._credentials: Any = None
        self._lock = asyncio.Lock()

    async def headers(self, client: RestRequester) -> dict[str, str]:
        async with self._lock:
            if self._credentials is None or not self._credentials.valid:
                await asyncio.to_thread(self._refresh_blocking)
        return {"Authorization": f"Bearer {self._credentials.token}"}

    async def refresh(self, client: RestRequester) -> bool:
        async with self._lock:
            await asyncio.to_thread(self._refresh_blocking)
        return True

    def _refresh_blocking(self) -> None:
        import google.auth
        import google.auth.exceptions
        import google.auth.transport.requests

        try:
            if self._credentials is None:
                self._credentials, _ = google.auth.default(scopes=self._scopes)
            self._credentials.refresh(google.auth.transport.requests.Request())
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise AirflowAuthError(401, f"no Google credentials for Cloud Composer: {exc}") from None
        except google.auth.exceptions.TransportError as exc:
            raise AirflowUnavailable(f"cannot refresh the Google access token: {exc}") from exc
        except google.auth.exceptions.RefreshError as exc:
            raise AirflowAuthError(401, f"the Google access token cannot be refreshed: {exc}") from None


def make_auth(
    mode: str, *, username: str | None = None, password: str | None = None, token: str | None = None
) -> AirflowAuth:
    """The strategy for a configured mode: ``none`` | ``basic`` | ``jwt`` | ``google``."""
    if mode == "none":
        return NoAuth()
    if mode == "basic":
        if not (username and password):
            raise ValueError("basic auth needs a username and a password")
        return BasicAuth(username, password)
    if mode == "jwt":
        return JwtAuth(username, password, token=token)
    if mode == "google":
        return GoogleAuth()
    raise ValueError(f"unknown Airflow auth mode {mode!r}: use none, basic, jwt or google")
