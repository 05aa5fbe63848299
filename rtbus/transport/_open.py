"""``open_realtime``: connect, hand out the connection for the body of an ``async with``, close.

Nothing reads the connection in the background: the body reads it (``receive``, ``async
for``, ``dispatch_events``). The one background task is the keepalive, when configured, in a
nursery around the body; it never raises (a timeout reaches the reader through the one error
path), so a group out of that nursery holds the body's exception alone and is unwrapped:
callers see plain exceptions. Connecting translates its own errors (``connect``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import MappingProxyType
from typing import Final

import trio

from rtbus._unwrapping import unwrap_lone_exception
from rtbus.protocol import AzureConfig, OpenAIConfig

from ._connection import RealtimeWebSocket, connect
from ._options import ConnectOptions
from ._target import ConnectTarget

__all__ = ["open_realtime", "open_target"]

_NO_QUERY: Final[Mapping[str, str]] = MappingProxyType({})
_DEFAULT_OPTIONS: Final = ConnectOptions()


def open_realtime(
    config: OpenAIConfig | AzureConfig,
    model: str = "gpt-realtime",
    *,
    extra_headers: Iterable[tuple[str, str]] = (),
    extra_query: Mapping[str, str] = _NO_QUERY,
    options: ConnectOptions = _DEFAULT_OPTIONS,
) -> AbstractAsyncContextManager[RealtimeWebSocket]:
    """Connect to a Realtime session for ``model``; ``async with`` it to use and close it.

    ``extra_headers`` are sent after the auth headers; ``extra_query`` is merged into the URL's
    query. Bad configuration raises ``ConfigError`` here, before any connection is attempted.
    """
    target = ConnectTarget.from_config(
        config, model, extra_headers=extra_headers, extra_query=extra_query
    )
    return open_target(target, options=options)


@asynccontextmanager
async def open_target(
    target: ConnectTarget, *, options: ConnectOptions = _DEFAULT_OPTIONS
) -> AsyncIterator[RealtimeWebSocket]:
    """Like :func:`open_realtime`, for a prepared :class:`ConnectTarget` (reconnect hooks)."""
    rt = await connect(target, options)
    try:
        async with _kept_alive(rt, options):
            yield rt
    finally:
        await rt.aclose()


@asynccontextmanager
async def _kept_alive(rt: RealtimeWebSocket, options: ConnectOptions) -> AsyncIterator[None]:
    """Run ``rt``'s keepalive around the body, if it has one; a task only then."""
    if options.keepalive_interval is None:
        yield
        return
    with unwrap_lone_exception():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rt._run_keepalive)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()
