"""Why the simulated server refuses a client event, worded as the real server words it.

The check itself is ``rtbus.protocol``'s: ``client_event_from_dict`` structures the event with
the protocol's models and the server's rules, and its ``ProtocolError`` carries a
``Violation`` (the server's error code and the field's path). This module only words it:
``WORDINGS`` maps each code to the real service's message, with the dotted path as ``param``.
Beyond validation the simulator refuses what it does not implement (``_SIM_LIMITS``), in the
same words, rather than accept it and silently never act on it.

Invariant: refusing never mutates the payload; the session handles only accepted events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Final

import attrs
import orjson

from rtbus.protocol import (
    CLIENT_EVENT_CLASSES,
    ClientEvent,
    McpTool,
    ProtocolError,
    ResponseCreateEvent,
    SessionUpdateEvent,
    TranscriptionSessionConfig,
    UnknownEvent,
    Violation,
    client_event_from_dict,
    encode,
)

__all__ = ["Refusal", "admitted"]


@attrs.frozen
class Refusal:
    """Why a client event was refused: the error ``code``, the dotted ``param``, a message."""

    code: str
    param: str
    message: str


def admitted(payload: dict[str, object]) -> dict[str, object] | Refusal:
    """``payload`` (a JSON object) as the server reads it, or why the server refuses it.

    Read as the server reads it: through the protocol's models, so an absent optional tag is
    filled in (``{"format": {}}`` is PCM) and ``null`` where it means "absent" is dropped.
    """
    if "type" not in payload:
        return _worded(Violation("missing_required_parameter", ("type",)), payload)
    try:
        event = client_event_from_dict(payload)
    except ProtocolError as exc:
        return _worded(exc.violation or _type_violation(), payload)
    if isinstance(event, UnknownEvent):
        return _worded(_type_violation(), payload)
    refusal = next(_sim_limits(event), None)
    if refusal is not None:
        return refusal
    read: dict[str, object] = orjson.loads(encode(event))
    return read


def _type_violation() -> Violation:
    # Only an event with no ``type`` string comes here without a violation.
    return Violation("invalid_value", ("type",), allowed=tuple(CLIENT_EVENT_CLASSES))


def _worded(violation: Violation, payload: Mapping[str, object]) -> Refusal:
    param = _dotted(violation.segments)
    value = _value_at(payload, violation.segments)
    return Refusal(violation.code, param, WORDINGS[violation.code](violation, param, value))


def _dotted(segments: tuple[str | int, ...]) -> str:
    out = ""
    for segment in segments:
        out += f"[{segment}]" if isinstance(segment, int) else f".{segment}"
    return out.lstrip(".")


def _value_at(value: object, segments: tuple[str | int, ...]) -> object:
    for segment in segments:
        if isinstance(value, dict) and isinstance(segment, str):
            value = value.get(segment)
        elif isinstance(value, list) and isinstance(segment, int) and segment < len(value):
            value = value[segment]
        else:
            return None
    return value


# -- the real service's wording, by error code --------------------------------------------------

_JSON_NAMES: Final[Mapping[type, str]] = {
    bool: "a boolean",
    int: "an integer",
    float: "a decimal",
    str: "a string",
    list: "an array",
    dict: "an object",
}

# The protocol's words for a kind, where the server uses others.
_SERVER_KINDS: Final = {"a number": "a decimal"}


def _got(value: object) -> str:
    return "null" if value is None else _JSON_NAMES.get(type(value), "an unknown value")


def _quoted_list(values: tuple[object, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def _invalid_type(violation: Violation, param: str, value: object) -> str:
    expected = violation.expected or "another type"
    for ours, theirs in _SERVER_KINDS.items():
        expected = expected.replace(ours, theirs)
    return f"Invalid type for '{param}': expected {expected}, but got {_got(value)} instead."


def _invalid_value(violation: Violation, param: str, value: object) -> str:
    if violation.allowed:
        supported = _quoted_list(violation.allowed)
        return f"Invalid value: '{value}'. Supported values are: {supported}."
    return f"Invalid '{param}'. Expected {violation.expected}."


def _out_of_range(bound: str, relation: str) -> Callable[[Violation, str, object], str]:
    def word(violation: Violation, param: str, value: object) -> str:
        kind = violation.code.split("_", 1)[0]  # integer_below_min_value -> integer
        shown = f"{value:g}" if isinstance(value, int | float) else str(value)
        return (
            f"Invalid '{param}': {kind} {bound} value. "
            f"Expected a value {relation} {violation.limit:g}, but got {shown} instead."
        )

    return word


def _too_long(violation: Violation, param: str, value: object) -> str:
    length = len(value) if isinstance(value, list) else 0
    return (
        f"Invalid '{param}': array too long. Expected an array with maximum length "
        f"{violation.limit:g}, but got an array with length {length} instead."
    )


#: The real service's message for each error code a ``Violation`` carries.
WORDINGS: Final[Mapping[str, Callable[[Violation, str, object], str]]] = {
    "unknown_parameter": lambda v, param, value: f"Unknown parameter: '{param}'.",
    "missing_required_parameter": lambda v, param, value: f"Missing required parameter: '{param}'.",
    "invalid_type": _invalid_type,
    "invalid_value": _invalid_value,
    "integer_below_min_value": _out_of_range("below minimum", ">="),
    "decimal_below_min_value": _out_of_range("below minimum", ">="),
    "integer_above_max_value": _out_of_range("above maximum", "<="),
    "decimal_above_max_value": _out_of_range("above maximum", "<="),
    "array_above_max_length": _too_long,
}


# -- what the simulator does not implement -----------------------------------------------------


def _sim_limits(event: ClientEvent) -> Iterator[Refusal]:
    """Valid events the simulator cannot act on: MCP tools."""
    if isinstance(event, SessionUpdateEvent):
        if not isinstance(event.session, TranscriptionSessionConfig):
            yield from _function_tools_only(event.session.tools, "session")
    elif isinstance(event, ResponseCreateEvent) and event.response is not None:
        yield from _function_tools_only(event.response.tools, "response")


def _function_tools_only(tools: tuple[object, ...] | None, where: str) -> Iterator[Refusal]:
    for index, tool in enumerate(tools or ()):
        if isinstance(tool, McpTool):
            yield _unsupported((where, "tools", index, "type"), "mcp", ("function",))


def _unsupported(
    segments: tuple[str | int, ...], value: str, supported: tuple[str, ...]
) -> Refusal:
    violation = Violation("invalid_value", segments, allowed=supported)
    param = _dotted(segments)
    return Refusal("invalid_value", param, _invalid_value(violation, param, value))
