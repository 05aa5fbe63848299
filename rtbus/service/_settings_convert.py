"""Structuring ``Settings`` from TOML's values, and naming every problem by its dotted key.

One private cattrs converter, strict about TOML's types (``"9000"`` is not an integer, ``1``
is not a string, ``true`` is not ``1``) and forbidding unknown keys, so a typo is an error,
never ignored. cattrs' detailed validation collects every failure in a tree of exception
groups; ``problems`` walks it into ``(dotted key, problem)`` pairs (``sessions[1].model``),
through a table of exception types. A wrong value under a secret key is never quoted.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from cattrs.gen import make_dict_structure_fn

from rtbus.protocol import ConfigError

from ._call_routes import CallRoute
from ._settings import UPSTREAM_KINDS, Settings, StartupSession, UpstreamSettings

__all__ = ["EXPECTED", "SECRET_KEYS", "is_secret", "problems", "scalar", "structure"]

#: The keys whose values are secrets, in whichever table.
SECRET_KEYS = frozenset({"api_key", "ad_token", "token", "password", "webhook_secret"})
# Where a required key can come from instead of the file.
_REQUIRED_HINTS = {
    "upstream.api_key": " (or set OPENAI_API_KEY)",
    "upstream.endpoint": " (or set AZURE_OPENAI_ENDPOINT)",
}


class _WrongType(ValueError):
    """A value of the wrong TOML type; ``got`` is left out under a secret key."""

    def __init__(self, expected: str, got: object) -> None:
        super().__init__(expected, got)
        self.expected = expected
        self.got = got

    def __str__(self) -> str:
        return f"expected {self.expected}, got {self.got!r}"


#: How a problem names each scalar type; the types an ``RTBUS_*`` variable can set.
EXPECTED: Mapping[Any, str] = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
}


def scalar(type_: Any) -> Any:
    """``int`` for ``int | None``; ``str`` for a ``Literal`` of strings; else the type."""
    if isinstance(type_, types.UnionType) or typing.get_origin(type_) is typing.Union:
        inner = [t for t in typing.get_args(type_) if t is not type(None)]
        return scalar(inner[0]) if len(inner) == 1 else None
    if typing.get_origin(type_) is Literal:
        return str
    return type_


def is_secret(key: str) -> bool:
    """Whether the dotted ``key`` holds a secret."""
    return key.rsplit(".", 1)[-1] in SECRET_KEYS


# --- the converter -------------------------------------------------------------------------


def _strict(cls: type) -> Callable[[object, type], object]:
    accepted = (int, float) if cls is float else (cls,)

    def structure(value: object, _: type) -> object:
        # bool is an int to Python, never to TOML.
        if isinstance(value, bool) is not (cls is bool) or not isinstance(value, accepted):
            raise _WrongType(EXPECTED[cls], value)
        return cls(value)

    return structure


def _literal(type_: Any) -> Callable[[object, type], object]:
    choices = typing.get_args(type_)

    def structure(value: object, _: type) -> object:
        if value not in choices or not isinstance(value, str):
            raise _WrongType("one of " + ", ".join(repr(c) for c in choices), value)
        return value

    return structure


def _table(value: object, _: type) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _WrongType("a table", value)
    return value


def _attrs_table(cls: type, converter: cattrs.Converter) -> Callable[[object, type], object]:
    structure: Callable[[Any, type], object] = make_dict_structure_fn(cls, converter)
    return lambda value, _: structure(_table(value, cls), cls)


def _upstream(value: object, _: type) -> UpstreamSettings:
    fields = dict(_table(value, dict))
    kind = fields.pop("kind", "sim")
    if not isinstance(kind, str) or kind not in UPSTREAM_KINDS:
        expected = "one of " + ", ".join(repr(k) for k in UPSTREAM_KINDS)
        raise ConfigError("kind", str(_WrongType(expected, kind)))
    cls = UPSTREAM_KINDS[kind]
    return _CONVERTER.structure(fields, cls)


def _is_literal(type_: Any) -> bool:
    return typing.get_origin(type_) is Literal


def _is_mapping(type_: Any) -> bool:
    return typing.get_origin(type_) in {Mapping, dict}


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    for cls in (int, float, str, bool):
        converter.register_structure_hook(cls, _strict(cls))
    converter.register_structure_hook_factory(_is_literal, _literal)
    converter.register_structure_hook_factory(_is_mapping, lambda _: _table)
    converter.register_structure_hook_factory(attrs.has, _attrs_table)
    converter.register_structure_hook(UpstreamSettings, _upstream)
    # A route says ``from``, a Python keyword: the field is ``from_``.
    route = make_dict_structure_fn(CallRoute, converter)
    converter.register_structure_hook(CallRoute, lambda v, t: route(_route_table(v), t))
    # An array of tables must be a TOML array: a table would be iterated as its keys.
    _register_array(converter, tuple[StartupSession, ...], "[[sessions]]")
    _register_array(converter, tuple[CallRoute, ...], "[[calls.routes]]")
    return converter


def _register_array(converter: cattrs.Converter, rows: Any, shown: str) -> None:
    array = converter.get_structure_hook(rows)
    converter.register_structure_hook_func(
        lambda t: t == rows, lambda v, t: array(_array(v, shown), t)
    )


def _route_table(value: object) -> dict[str, Any]:
    table = dict(_table(value, dict))
    if "from_" in table:
        raise ConfigError("from_", "is spelled 'from'")
    if "from" in table:
        table["from_"] = table.pop("from")
    return table


def _array(value: object, shown: str) -> object:
    if not isinstance(value, list):
        raise _WrongType(f"an array of tables ({shown})", value)
    return value


_CONVERTER = _make_converter()


def structure(raw: Mapping[str, Any]) -> Settings:
    """The settings ``raw`` (TOML's values) describes; raises cattrs' validation errors,
    which ``problems`` reads."""
    return _CONVERTER.structure(raw, Settings)


def problems(exc: BaseException) -> Iterator[tuple[str, str]]:
    """``(dotted key, problem)`` for every failure in a structuring error."""
    return _walk(exc, "")


# --- errors -> (dotted key, problem) -------------------------------------------------------


def _walk(exc: BaseException, path: str) -> Iterator[tuple[str, str]]:
    yield from _walker(exc)(exc, path)


def _walker(exc: BaseException) -> Callable[[Any, str], Iterator[tuple[str, str]]]:
    return next(walker for kind, walker in _WALKERS if isinstance(exc, kind))


def _walk_class(exc: Any, path: str) -> Iterator[tuple[str, str]]:
    with_notes, without = exc.group_exceptions()
    for inner, note in with_notes:
        yield from _walk(inner, _join(path, note.name))
    for inner in without:
        if _walker(inner) is _walk_other:
            # Raised by the class itself (a validator, __attrs_post_init__): find its field.
            yield _field_problem(inner, path, exc.cl)
        else:
            yield from _walk(inner, path)


def _walk_array(exc: Any, path: str) -> Iterator[tuple[str, str]]:
    with_notes, without = exc.group_exceptions()
    for inner, note in with_notes:
        yield from _walk(inner, f"{path}[{note.index}]")
    for inner in without:
        yield from _walk(inner, path)


def _walk_extra(exc: Any, path: str) -> Iterator[tuple[str, str]]:
    for key in sorted(exc.extra_fields):
        yield _join(path, key), f"unknown {'key' if path else 'section'}{_hint(key, exc.cl)}"


def _hint(key: str, cls: type) -> str:
    kinds = [repr(k) for k, kind in UPSTREAM_KINDS.items() if key in attrs.fields_dict(kind)]
    if kinds and cls in UPSTREAM_KINDS.values():
        return f" for this kind (it is a key of kind {' and '.join(kinds)})"
    near = difflib.get_close_matches(key, attrs.fields_dict(cls), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _walk_config(exc: Any, path: str) -> Iterator[tuple[str, str]]:
    # Some classes name the whole dotted key already (HttpConfig says "http.port").
    prefixed = exc.key == path or exc.key.startswith(f"{path}.")
    yield exc.key if path and prefixed else _join(path, exc.key), exc.problem


def _walk_wrong_type(exc: Any, path: str) -> Iterator[tuple[str, str]]:
    yield path, f"expected {exc.expected}" if is_secret(path) else str(exc)


def _walk_missing(exc: BaseException, path: str) -> Iterator[tuple[str, str]]:
    yield path, "is required" + _REQUIRED_HINTS.get(path, "")


def _walk_other(exc: BaseException, path: str) -> Iterator[tuple[str, str]]:
    yield path, str(exc)


_WALKERS: tuple[tuple[type[BaseException], Callable[[Any, str], Iterator[tuple[str, str]]]], ...]
_WALKERS = (
    (ClassValidationError, _walk_class),
    (IterableValidationError, _walk_array),
    (ForbiddenExtraKeysError, _walk_extra),
    (ConfigError, _walk_config),
    (_WrongType, _walk_wrong_type),
    (KeyError, _walk_missing),
    (BaseException, _walk_other),
)
# attrs' and Backoff's validators start their messages with the field's name.
_LEADING_NAME = re.compile(r"^'?(?P<name>[a-z_]+)'?\s+(?P<problem>.*)$", re.DOTALL)


def _field_problem(exc: BaseException, path: str, cls: type) -> tuple[str, str]:
    match = _LEADING_NAME.match(str(exc))
    if match and match["name"] in attrs.fields_dict(cls):
        return _join(path, match["name"]), match["problem"]
    return path, str(exc)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
