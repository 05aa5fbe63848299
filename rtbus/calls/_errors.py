"""The calls client's exceptions, each named for whose fault it is.

* A missing call id is a ``ProtocolError`` before anything is sent.
* ``CallsRequestError`` -- the API refused our request (4xx): a bad session config, a bad key,
  an operation the call's state does not allow. Retrying the same request will not help.
  ``CallNotFoundError`` (404) -- the call id is unknown or the call has ended: nobody's fault,
  the call is gone (a caller who hung up before we accepted).
* ``CallsUpstreamError`` -- the API kept failing (429, 5xx, 408, 409, as the ``openai``
  package retries) through every retry, or answered with something that is not the reply.
* ``CallsTransportError`` -- no answer at all (connection refused, TLS, timeout) through every
  retry.

All are ``CallsError``, an ``RtbusError``; each names the endpoint (``POST
/realtime/calls/{call_id}/accept``) and the call id, and the server's text is scrubbed of the
credentials the request carried before it goes into a message.
"""

from __future__ import annotations

from rtbus.protocol import RtbusError

__all__ = [
    "CallNotFoundError",
    "CallsError",
    "CallsRequestError",
    "CallsTransportError",
    "CallsUpstreamError",
]


class CallsError(RtbusError):
    """A calls API operation failed; ``endpoint`` and ``call_id`` say which."""

    def __init__(self, message: str, endpoint: str, call_id: str | None) -> None:
        super().__init__(message, endpoint, call_id)
        self.message = message
        self.endpoint = endpoint
        self.call_id = call_id

    def __str__(self) -> str:
        about = f" (call {self.call_id})" if self.call_id else ""
        return f"{self.endpoint}{about}: {self.message}"


class _StatusError(CallsError):
    def __init__(
        self,
        message: str,
        endpoint: str,
        call_id: str | None,
        *,
        status: int,
        code: str | None = None,
    ) -> None:
        super().__init__(message, endpoint, call_id)
        self.status = status
        self.code = code

    def __str__(self) -> str:
        code = f", {self.code}" if self.code else ""
        return f"{super().__str__()} [HTTP {self.status}{code}]"


class CallsRequestError(_StatusError):
    """The API refused our request with a 4xx other than 429: ours to fix, not to retry."""


class CallNotFoundError(CallsRequestError):
    """404: the call id is unknown or the call has already ended."""


class CallsUpstreamError(_StatusError):
    """The API answered 429 or 5xx (or 408, 409) on every attempt; ``retry_after`` is the
    wait the last answer asked for, if it said."""

    retry_after: float | None = None


class CallsTransportError(CallsError):
    """The API could not be reached (or did not answer in time) on any attempt."""
