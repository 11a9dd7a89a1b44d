"""A small client of the daemon's API, for the CLI (`monitor incidents`, `ack`, `silence`…)."""

from __future__ import annotations

from typing import Any

import aiohttp

from monitor.core.errors import ApiError
from monitor.core.redact import redact_text

__all__ = ["ApiClient", "ApiError"]


class ApiClient:
    def __init__(self, base_url: str, token: str | None, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def get(self, path: str, **params: str) -> Any:
        return await self._call("GET", path, params=params)

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return await self._call("POST", path, body=body or {})

    async def put(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return await self._call("PUT", path, body=body or {})

    async def delete(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return await self._call("DELETE", path, body=body or {})

    async def _call(
        self, method: str, path: str, *, params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:  # fmt: skip
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        url = self.base_url + path
        try:
            async with (
                aiohttp.ClientSession(timeout=self.timeout) as session,
                session.request(method, url, params=params, json=body, headers=headers) as resp,
            ):
                try:
                    doc = await resp.json(content_type=None)
                except ValueError:
                    doc = None
                if resp.status >= 400:
                    message = doc.get("error") if isinstance(doc, dict) else None
                    raise ApiError(redact_text(f"{resp.status}: {message or resp.reason}"))
                return doc
        except aiohttp.ClientError as exc:
            raise ApiError(
                redact_text(f"cannot reach the daemon at {self.base_url}: {exc}")
            ) from exc
        except TimeoutError as exc:
            raise ApiError(
                redact_text(f"the daemon at {self.base_url} did not answer in time")
            ) from exc
