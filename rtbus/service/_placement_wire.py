"""The control stream's wire: key names, request and reply entries (sans-IO, no Redis here).

Layout -- every key starts with the Redis config's ``prefix`` (``{rtbus}``), whose hash tag
keeps them in one Redis Cluster slot, so the claim scripts may touch several at once:

    {rtbus}:control                     requests to open a session; consumer group ``nodes``
    {rtbus}:control:replies:<node>      answers to the requests <node> made; expires when idle
    {rtbus}:sessions                    hash: session id -> the node that runs it (the claim)
    {rtbus}:sessions:requests           hash: session id -> the request that claimed it
    {rtbus}:node:<node>                 the node's lease: gone when the node is

A request carries its own deadline (wall-clock milliseconds): a node never opens a session
for a caller that has stopped waiting. Clocks of the nodes are assumed to agree to well
under the request timeout.

Decoding never trusts an entry: a malformed one raises ``MalformedEntry`` naming the field,
and the node acknowledges it with an ``invalid_request`` answer when it can tell whom to send
it to.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs
import orjson

if TYPE_CHECKING:
    from rtbus.session import Session

__all__ = [
    "NODE_ID",
    "SESSION_ID",
    "ControlKeys",
    "MalformedEntry",
    "Outcome",
    "PlacedSession",
    "PlacementReply",
    "PlacementRequest",
    "check_node_id",
    "check_options",
    "check_session_id",
    "malformed_reply",
]

#: What a node id may be: it becomes part of key names and the consumer's name.
NODE_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: What a session id may be (the control API's rule): it travels in keys' fields and URLs.
SESSION_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

GROUP: Final = "nodes"
_MAX_MODEL = 128


class MalformedEntry(ValueError):
    """Raised when a control or reply entry lacks a field or holds a bad value."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", field, problem)
        self.field = field
        self.problem = problem

    def __str__(self) -> str:
        return str(self.args[0])


@attrs.frozen
class PlacedSession:
    """Where a session was opened: its ``id``, the ``node`` running it (``None`` for a
    service with no placement), and ``session``, the handle when it runs in this process."""

    id: str
    node: str | None
    session: Session | None = attrs.field(default=None, repr=False, eq=False)


class Outcome(enum.StrEnum):
    """How a node answered a request; anything but ``OPENED`` is a refusal."""

    OPENED = "opened"
    DUPLICATE = "duplicate_id"  # the id runs on a live node already
    START_FAILED = "start_failed"  # the session could not become ready
    INVALID = "invalid_request"  # the request itself is wrong (a bad session config)
    NOT_RUNNING = "not_running"  # the node is draining
    EXPIRED = "expired"  # the caller's deadline passed before the session was ready


@attrs.frozen
class ControlKeys:
    """The key names under one prefix."""

    prefix: str

    @property
    def control(self) -> str:
        return f"{self.prefix}:control"

    @property
    def group(self) -> str:
        return GROUP

    @property
    def sessions(self) -> str:
        return f"{self.prefix}:sessions"

    @property
    def requests(self) -> str:
        return f"{self.prefix}:sessions:requests"

    def replies(self, node: str) -> str:
        return f"{self.prefix}:control:replies:{node}"

    def lease(self, node: str) -> str:
        return f"{self.prefix}:node:{node}"


@attrs.frozen(kw_only=True)
class PlacementRequest:
    """One request to open a session somewhere; ``request`` is its correlation id."""

    request: str
    reply_to: str
    session_id: str
    deadline_ms: int
    model: str | None = None
    session: Mapping[str, Any] | None = None

    def fields(self) -> dict[bytes, bytes]:
        fields = {
            b"request": self.request.encode(),
            b"reply_to": self.reply_to.encode(),
            b"session_id": self.session_id.encode(),
            b"deadline": str(self.deadline_ms).encode(),
        }
        if self.model is not None:
            fields[b"model"] = self.model.encode()
        if self.session is not None:
            fields[b"session"] = orjson.dumps(self.session)
        return fields

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes]) -> PlacementRequest:
        """Decode an entry; raises ``MalformedEntry`` naming the first bad field."""
        reply_to = _text(fields, "reply_to")
        if not NODE_ID.fullmatch(reply_to):
            raise MalformedEntry("reply_to", "is not a node id")
        return cls(
            request=_text(fields, "request"),
            reply_to=reply_to,
            session_id=_session_id(fields),
            deadline_ms=_deadline(fields),
            model=_model(fields),
            session=_session(fields),
        )


@attrs.frozen(kw_only=True)
class PlacementReply:
    """A node's answer to one request; ``message`` says why when it is a refusal."""

    request: str
    session_id: str
    node: str
    outcome: Outcome
    message: str = ""

    def fields(self) -> dict[bytes, bytes]:
        return {
            b"request": self.request.encode(),
            b"session_id": self.session_id.encode(),
            b"node": self.node.encode(),
            b"outcome": self.outcome.value.encode(),
            b"message": self.message.encode(),
        }

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes]) -> PlacementReply:
        outcome = _text(fields, "outcome")
        try:
            known = Outcome(outcome)
        except ValueError:
            raise MalformedEntry("outcome", f"unknown outcome {outcome[:40]!r}") from None
        return cls(
            request=_text(fields, "request"),
            session_id=_text(fields, "session_id"),
            node=_text(fields, "node"),
            outcome=known,
            message=_text(fields, "message", required=False),
        )


def malformed_reply(fields: Mapping[bytes, bytes], node: str, problem: str) -> PlacementReply:
    """The ``invalid_request`` answer to an entry that could not be decoded."""
    return PlacementReply(
        request=fields.get(b"request", b"").decode(errors="replace")[:64],
        session_id=fields.get(b"session_id", b"").decode(errors="replace")[:128],
        node=node,
        outcome=Outcome.INVALID,
        message=f"the request is malformed: {problem}",
    )


def check_node_id(node: object) -> str:
    """``node`` if it is a valid node id; raises ``ValueError`` saying what one is."""
    if not isinstance(node, str) or not NODE_ID.fullmatch(node):
        raise ValueError(
            f"a node id must be 1-64 letters, digits, '_', '.' or '-', not starting with a "
            f"symbol, got {node!r}"
        )
    return node


def check_session_id(id: object) -> str:
    """``id`` if it is a valid session id; raises ``ValueError`` saying what one is."""
    if not isinstance(id, str) or not SESSION_ID.fullmatch(id):
        shown = id if not isinstance(id, str) or len(id) <= 60 else id[:57] + "..."
        raise ValueError(
            f"a session id must be 1-128 letters, digits, '.', '_', ':' or '-', not starting "
            f"with a symbol, got {shown!r}"
        )
    return id


def check_options(model: object, session: object) -> None:
    """Check what a caller asks for before anything is sent.

    Raises ``TypeError`` or ``ValueError`` naming the argument.
    """
    if model is not None and not (isinstance(model, str) and 0 < len(model) <= _MAX_MODEL):
        raise ValueError(f"model must be a non-empty string of at most {_MAX_MODEL} characters")
    if session is None:
        return
    if not isinstance(session, Mapping):
        raise TypeError(f"session must be a mapping (the session config), got {type(session)}")
    try:
        orjson.dumps(dict(session))
    except TypeError as exc:
        raise ValueError(f"session must be JSON-serialisable: {exc}") from None


def _text(fields: Mapping[bytes, bytes], name: str, *, required: bool = True) -> str:
    raw = fields.get(name.encode())
    if raw is None:
        if required:
            raise MalformedEntry(name, "is missing")
        return ""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise MalformedEntry(name, "is not UTF-8") from None


def _session_id(fields: Mapping[bytes, bytes]) -> str:
    id = _text(fields, "session_id")
    if not SESSION_ID.fullmatch(id):
        raise MalformedEntry("session_id", "is not a valid session id")
    return id


def _deadline(fields: Mapping[bytes, bytes]) -> int:
    text = _text(fields, "deadline")
    if not text.isdigit():
        raise MalformedEntry("deadline", "is not a number of milliseconds")
    return int(text)


def _model(fields: Mapping[bytes, bytes]) -> str | None:
    model = _text(fields, "model", required=False)
    if len(model) > _MAX_MODEL:
        raise MalformedEntry("model", f"is longer than {_MAX_MODEL} characters")
    return model or None


def _session(fields: Mapping[bytes, bytes]) -> Mapping[str, Any] | None:
    raw = fields.get(b"session")
    if raw is None:
        return None
    try:
        session = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MalformedEntry("session", "is not JSON") from None
    if not isinstance(session, dict):
        raise MalformedEntry("session", "is not a JSON object")
    return session
