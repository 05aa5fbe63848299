"""What became of a client event someone waited for: the upstream refused it, or not."""

from __future__ import annotations

import attrs

from ._models import ErrorDetails

__all__ = ["EventOutcome"]


@attrs.frozen
class EventOutcome:
    """The outcome of a client event sent and waited for (``Session.submit`` in process,
    ``RemoteBus.submit`` through the gateway): ``error`` is the upstream's refusal, or
    ``None`` when no error named the event within the wait (``accepted``)."""

    event_id: str
    error: ErrorDetails | None

    @property
    def status(self) -> str:
        return "accepted" if self.error is None else "refused"
