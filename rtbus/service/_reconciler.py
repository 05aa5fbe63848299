"""The reconciler: configured sessions are desired state.

A session the service was configured with (``[[sessions]]``) must run. Its supervisor restarts
it within its own budget; past that, or after a ``Fatal`` failure, it is gone for good as far
as supervision goes. The reconciler is what brings it back: it opens it again, as often as it
takes, on a capped exponential backoff (``rtbus._backoff``).

Invariants:

* One task per desired session id; it touches that id only. Sessions opened any other way
  (the control API) are the caller's and are never reopened.
* A task waits until its session is gone from the service, waits the next backoff delay, then
  opens it again; a failed open counts as a run of 0 seconds, so the delay grows, and a
  session that stayed up ``reset_after`` seconds starts the curve over.
* While a session is gone, ``problem(id)`` says so for readiness (``failed, retrying in 8s``,
  then ``failed, reopening``); once it is open again it says nothing.
* It stops with the nursery it runs in: the drain cancels it before sessions are stopped, and
  a cancelled open leaves no session behind (a start that never became ready is not added).
"""

from __future__ import annotations

import functools
import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping

import trio

from rtbus._backoff import Backoff, BackoffState
from rtbus.session import Session, SessionSpec

__all__ = ["SessionReconciler"]

_log = logging.getLogger("rtbus.service")

OpenSession = Callable[..., Awaitable[Session]]
WaitGone = Callable[[str], Awaitable[None]]
# While the open is in flight, retry_at is this: the delay has passed.
_OPENING = -math.inf


class SessionReconciler:
    """Reopens the ``desired`` sessions when they are gone; see the module."""

    def __init__(
        self,
        open_session: OpenSession,
        wait_gone: WaitGone,
        desired: Mapping[str, SessionSpec],
        backoff: Backoff,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._open = open_session
        self._wait_gone = wait_gone
        self._desired = dict(desired)
        self._backoff = backoff
        self._rng = rng or random.Random()
        # id -> when it is opened again (_OPENING once under way); absent while it runs.
        self._retry_at: dict[str, float] = {}

    def problem(self, id: str) -> str | None:
        """For readiness: why a desired session is not there, or None if it is not waited for."""
        retry_at = self._retry_at.get(id)
        if retry_at is None:
            return None
        if retry_at == _OPENING:
            return "failed, reopening"
        seconds = max(0, math.ceil(retry_at - trio.current_time()))
        return f"failed, retrying in {seconds}s"

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep every desired session open until cancelled."""
        async with trio.open_nursery() as nursery:
            for id, spec in self._desired.items():
                nursery.start_soon(functools.partial(self._keep, id, spec))
            task_status.started()

    async def _keep(self, id: str, spec: SessionSpec) -> None:
        state = BackoffState(self._backoff)
        # When the session last came up; None after a failed open (a run of no length).
        up_since: float | None = trio.current_time()
        while True:
            await self._wait_gone(id)
            ran_for = 0.0 if up_since is None else trio.current_time() - up_since
            attempt, delay = state.next_retry(ran_for, self._rng)
            self._retry_at[id] = trio.current_time() + delay
            _log.warning("session gone", extra=_fields(session=id, attempt=attempt, retry_in=delay))
            await trio.sleep(delay)
            self._retry_at[id] = _OPENING
            opened = await self._reopen(id, spec)
            del self._retry_at[id]
            up_since = trio.current_time() if opened else None

    async def _reopen(self, id: str, spec: SessionSpec) -> bool:
        try:
            await self._open(id=id, spec=spec)
        except Exception as exc:
            reason = f"{exc}: {exc.__cause__}" if exc.__cause__ else str(exc)
            _log.warning("session could not be reopened", extra=_fields(session=id, reason=reason))
            return False
        _log.info("session reopened", extra=_fields(session=id))
        return True


def _fields(**fields: object) -> dict[str, dict[str, object]]:
    return {"fields": fields}
