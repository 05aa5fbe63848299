"""A small declarative validator for client payloads, with the real service's error wording.

The simulator cannot use the ``openai`` package at run time (it is a dev dependency), so the
shapes it accepts are written here as data: ``Obj`` of fields, ``OneOf`` literals, ``Tagged``
unions on ``type``. ``check(schema, value, path)`` returns the first ``Problem`` or ``None``;
a ``Problem`` becomes an ``invalid_request_error`` whose ``param`` is the dotted path.

Invariant: validators never mutate or normalise; the session merges only validated values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import attrs

__all__ = [
    "AnyJSON",
    "AnyOf",
    "Bool",
    "Int",
    "ListOf",
    "Nullable",
    "Num",
    "Obj",
    "OneOf",
    "Problem",
    "Schema",
    "Str",
    "Tagged",
    "check",
]


@attrs.frozen
class Problem:
    """Why a client payload was refused: the error ``code``, the dotted ``param``, a message."""

    code: str
    param: str
    message: str


class Schema(Protocol):
    """Anything that can judge a JSON value found at a dotted path."""

    def __call__(self, value: object, path: str) -> Problem | None: ...


_JSON_NAMES: Mapping[type, str] = {
    bool: "a boolean",
    int: "an integer",
    float: "a decimal",
    str: "a string",
    list: "an array",
    dict: "an object",
}


def _got(value: object) -> str:
    return "null" if value is None else _JSON_NAMES.get(type(value), "an unknown value")


def _invalid_type(path: str, expected: str, value: object) -> Problem:
    message = f"Invalid type for '{path}': expected {expected}, but got {_got(value)} instead."
    return Problem("invalid_type", path, message)


def _quoted_list(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def check(schema: Schema, value: object, path: str) -> Problem | None:
    """The first problem ``schema`` finds in ``value`` (at ``path``), or ``None``."""
    return schema(value, path)


@attrs.frozen
class Str:
    """A JSON string."""

    def __call__(self, value: object, path: str) -> Problem | None:
        return None if isinstance(value, str) else _invalid_type(path, "a string", value)


@attrs.frozen
class Bool:
    """A JSON boolean."""

    def __call__(self, value: object, path: str) -> Problem | None:
        return None if isinstance(value, bool) else _invalid_type(path, "a boolean", value)


def _range_problem(path: str, kind: str, value: float, low: float, high: float) -> Problem | None:
    if value < low:
        return Problem(
            f"{kind}_below_min_value",
            path,
            f"Invalid '{path}': {kind} below minimum value. "
            f"Expected a value >= {low:g}, but got {value:g} instead.",
        )
    if value > high:
        return Problem(
            f"{kind}_above_max_value",
            path,
            f"Invalid '{path}': {kind} above maximum value. "
            f"Expected a value <= {high:g}, but got {value:g} instead.",
        )
    return None


@attrs.frozen
class Int:
    """A JSON integer within ``[low, high]``."""

    low: float = float("-inf")
    high: float = float("inf")

    def __call__(self, value: object, path: str) -> Problem | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return _invalid_type(path, "an integer", value)
        return _range_problem(path, "integer", value, self.low, self.high)


@attrs.frozen
class Num:
    """A JSON number within ``[low, high]``."""

    low: float = float("-inf")
    high: float = float("inf")

    def __call__(self, value: object, path: str) -> Problem | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return _invalid_type(path, "a decimal", value)
        return _range_problem(path, "decimal", value, self.low, self.high)


@attrs.frozen
class OneOf:
    """One of a fixed set of strings (an enum)."""

    values: tuple[str, ...]

    def __call__(self, value: object, path: str) -> Problem | None:
        if not isinstance(value, str):
            return _invalid_type(path, "one of " + _quoted_list(self.values), value)
        if value in self.values:
            return None
        message = f"Invalid value: '{value}'. Supported values are: {_quoted_list(self.values)}."
        return Problem("invalid_value", path, message)


@attrs.frozen
class Nullable:
    """``null`` or what ``inner`` accepts."""

    inner: Schema

    def __call__(self, value: object, path: str) -> Problem | None:
        return None if value is None else self.inner(value, path)


@attrs.frozen
class AnyOf:
    """The first alternative whose JSON kind matches decides (``int | "inf"``, ``str | obj``)."""

    alternatives: tuple[tuple[type | tuple[type, ...], Schema], ...]
    expected: str

    def __call__(self, value: object, path: str) -> Problem | None:
        for kind, schema in self.alternatives:
            if isinstance(value, kind) and not isinstance(value, bool):
                return schema(value, path)
        return _invalid_type(path, self.expected, value)


@attrs.frozen
class ListOf:
    """A JSON array whose every element ``item`` accepts (paths gain ``[i]``)."""

    item: Schema
    max_items: int | None = None

    def __call__(self, value: object, path: str) -> Problem | None:
        if not isinstance(value, list):
            return _invalid_type(path, "an array", value)
        if self.max_items is not None and len(value) > self.max_items:
            message = (
                f"Invalid '{path}': array too long. Expected an array with maximum length "
                f"{self.max_items}, but got an array with length {len(value)} instead."
            )
            return Problem("array_above_max_length", path, message)
        for index, element in enumerate(value):
            problem = self.item(element, f"{path}[{index}]")
            if problem is not None:
                return problem
        return None


@attrs.frozen
class AnyJSON:
    """Any JSON value of the given kind, unchecked inside (a JSON Schema, metadata)."""

    kind: type = dict

    def __call__(self, value: object, path: str) -> Problem | None:
        if isinstance(value, self.kind):
            return None
        return _invalid_type(path, _JSON_NAMES.get(self.kind, "a value"), value)


@attrs.frozen
class Obj:
    """A JSON object with known ``fields``; unknown keys and missing ``required`` keys fail."""

    fields: Mapping[str, Schema]
    required: tuple[str, ...] = ()

    def __call__(self, value: object, path: str) -> Problem | None:
        if not isinstance(value, dict):
            return _invalid_type(path, "an object", value)
        return self._missing(value, path) or self._fields(value, path)

    def _missing(self, value: dict[str, object], path: str) -> Problem | None:
        for key in self.required:
            if key not in value:
                where = _join(path, key)
                return Problem(
                    "missing_required_parameter", where, f"Missing required parameter: '{where}'."
                )
        return None

    def _fields(self, value: dict[str, object], path: str) -> Problem | None:
        for key, element in value.items():
            where = _join(path, key)
            schema = self.fields.get(key)
            if schema is None:
                return Problem("unknown_parameter", where, f"Unknown parameter: '{where}'.")
            problem = schema(element, where)
            if problem is not None:
                return problem
        return None


@attrs.frozen
class Tagged:
    """An object whose ``type`` field picks the ``Obj`` that judges the rest."""

    variants: Mapping[str, Schema]
    tag: str = "type"

    def __call__(self, value: object, path: str) -> Problem | None:
        if not isinstance(value, dict):
            return _invalid_type(path, "an object", value)
        tag_schema = OneOf(tuple(self.variants))
        where = _join(path, self.tag)
        if self.tag not in value:
            return Problem(
                "missing_required_parameter", where, f"Missing required parameter: '{where}'."
            )
        problem = tag_schema(value[self.tag], where)
        if problem is not None:
            return problem
        return self.variants[str(value[self.tag])](value, path)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
