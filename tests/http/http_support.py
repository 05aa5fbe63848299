"""Shared helpers for the HTTP surface's tests: a served service and a client that knows the
token."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import attrs
import trio
from support.http_client import HttpResponse, request

from rtbus.service import HttpAddress, HttpConfig, Service, serve_http

TOKEN = "rtbus-http-test-token-3f9c"


@attrs.frozen
class Api:
    """A client of one served surface; control calls carry the token unless told otherwise."""

    address: HttpAddress
    token: str | None = TOKEN

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        headers: Iterable[tuple[str, str]] | None = None,
        **options: Any,
    ) -> HttpResponse:
        if headers is None:
            headers = [("authorization", f"Bearer {self.token}")] if self.token else []
        return await request(self.address.url, method, path, json=json, headers=headers, **options)

    async def get(self, path: str, **options: Any) -> HttpResponse:
        return await self.call("GET", path, **options)

    async def post(self, path: str, json: object = None, **options: Any) -> HttpResponse:
        return await self.call("POST", path, json=json, **options)

    async def delete(self, path: str, **options: Any) -> HttpResponse:
        return await self.call("DELETE", path, **options)

    async def session_ids(self) -> list[str]:
        listed = await self.get("/v1/sessions")
        assert listed.status == 200, listed
        return [session["id"] for session in listed.json()["sessions"]]


@contextlib.asynccontextmanager
async def serving(service: Service, config: HttpConfig | None = None) -> AsyncIterator[Api]:
    """Serve ``service`` on a free port for the body of the ``async with``."""
    config = config or HttpConfig(port=0, token=TOKEN)
    async with trio.open_nursery() as nursery:
        address: HttpAddress = await nursery.start(serve_http, service, config)
        yield Api(address, config.token)
        nursery.cancel_scope.cancel()


def error_of(response: HttpResponse) -> tuple[int, str]:
    """The status and error code of a JSON error response (and check its shape)."""
    payload = response.json()
    assert set(payload) == {"error"}, payload
    assert set(payload["error"]) == {"code", "message"}, payload
    assert payload["error"]["message"], payload
    return response.status, payload["error"]["code"]
