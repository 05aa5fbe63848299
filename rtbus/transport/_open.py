"""``open_realtime``: connect, hand out the connection for the body of an ``async with``, close.

The connection's background tasks (trio-websocket's reader, the keepalive) run in a nursery
around the body. They never raise on purpose -- failures reach the reader of the connection
through the one error path -- so an exception group out of that nursery holds the body's
exception or one from the handshake; it is unwrapped so callers see plain exceptions (as
trio-websocket's own ``open_websocket`` does), and a handshake error is translated.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import MappingProxyType
from typing import Final

import trio

from rtbus._unwrapping import reraise, sole_exception
from rtbus.protocol._config import AzureConfig, OpenAIConfig

from ._connection import RealtimeWebSocket, connect
from ._exceptions import translate
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
    body_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            rt = await connect(nursery, target, options)
            try:
                yield rt
            except BaseException as exc:
                body_error = exc
                raise
            finally:
                await rt.aclose()
    except BaseExceptionGroup as group:
        error = sole_exception(group)
        if error is None:
            raise
        if error is body_error:
            reraise(error)
        translated = translate(error, target)
        if translated is error:
            reraise(error)
        raise translated from error
