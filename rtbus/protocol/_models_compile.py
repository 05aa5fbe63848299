"""Compiles, once per model class, the functions that structure and unstructure it.

The codec's cattrs converter calls ``structure_function(cls, hook_for)`` and
``unstructure_function(cls, hook_for)`` from its hook factories; ``hook_for`` is the
converter's ``get_*_hook``, so nested types resolve (and are cached) through the converter.

A structure function takes the parsed JSON value and returns the model instance, or raises
``Mismatch``. A field's type is one of: a primitive (``str``, ``int``, ``float``, ``bool``), a
``Literal``, ``JsonValue`` (anything), a model class, ``tuple[T, ...]``, ``Mapping[str, T]`` or a
union of those, optionally ``| None`` and ``| Null``. Primitives and literals are checked inline
in the generated source; the rest call a function built here.

A strict structure function (``strict`` given) is what a server applies to what clients send:
an unknown field is an error, not kept in ``_extra``; each field may carry a further check
(a range, base64, an enum the schema leaves open) and may be required although the schema
makes it optional. Server events are structured leniently, so a server that grows never
breaks a reader.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, Union

import attrs

from ._models_base import EMPTY_EXTRA, JsonValue
from ._null import NULL, Null

__all__ = [
    "Mismatch",
    "Strict",
    "describe_kind",
    "not_allowed",
    "structure_function",
    "union_unstructure_function",
    "unstructure_function",
]

# Generated functions take the value, and optionally the type as cattrs hooks do.
Fn = Callable[..., Any]
HookFor = Callable[[Any], Callable[..., Any]]

_PRIMITIVES: Final = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}
_KINDS: Final = {
    dict: "an object",
    list: "an array",
    tuple: "an array",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}
_ABSENT: Final = object()


class Mismatch(Exception):
    """A value does not fit its model; ``path`` grows innermost-first on the way out.

    ``code``, ``expected``, ``allowed`` and ``limit`` become the ``Violation`` the codec's
    ``ProtocolError`` carries (see ``_errors``).
    """

    def __init__(
        self,
        message: str,
        *segments: str | int,
        code: str = "invalid_value",
        expected: str | None = None,
        allowed: tuple[object, ...] = (),
        limit: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str | int] = list(segments)
        self.code = code
        self.expected = expected
        self.allowed = allowed
        self.limit = limit

    def render_path(self) -> str | None:
        """The dotted path, outermost first: ``response.output[0].content``."""
        out = ""
        for segment in reversed(self.path):
            out += f"[{segment}]" if isinstance(segment, int) else f".{segment}"
        return out.lstrip(".") or None


def describe_kind(value: object) -> str:
    """What a JSON value is, in words, for error messages (never the value itself)."""
    return _KINDS.get(type(value), type(value).__name__)


def _wrong(expected: str, value: object, *segments: str | int) -> Mismatch:
    message = f"expected {expected}, got {describe_kind(value)}"
    return Mismatch(message, *segments, code="invalid_type", expected=expected)


def not_allowed(values: tuple[object, ...], value: object, *segments: str | int) -> Mismatch:
    """The error for a value outside an enum (the value shown, cut to 40 characters)."""
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    allowed = ", ".join(repr(v) for v in values)
    return Mismatch(f"{shown} is not one of {allowed}", *segments, allowed=values)


def _missing(key: str) -> Mismatch:
    return Mismatch("missing required field", key, code="missing_required_parameter")


def _unknown(o: Mapping[str, object], known: frozenset[str]) -> Mismatch:
    key = next(k for k in o if k not in known)
    return Mismatch("unknown field", key, code="unknown_parameter")


@attrs.frozen
class Strict:
    """What a strict structure function checks beyond the schema (see the module header).

    ``checks[(cls, field)]`` takes the field's structured value and raises ``Mismatch``
    (without a path); ``required[cls]`` names fields the server requires.
    """

    checks: Mapping[tuple[type, str], Callable[[Any], None]]
    required: Mapping[type, frozenset[str]]


# -- type analysis ----------------------------------------------------------------------------


@attrs.frozen
class FieldType:
    """A field's type taken apart: the arms that matter, and whether None/NULL are allowed."""

    arms: tuple[Any, ...]
    optional: bool
    nullable: bool

    @classmethod
    def of(cls, annotation: Any) -> FieldType:
        arms = _union_arms(annotation)
        # Models say ``tuple[...]``; only ``JsonValue`` has a ``list`` arm.
        if any(typing.get_origin(a) is list for a in arms):
            return cls((JsonValue,), True, Null in arms)
        plain = tuple(a for a in arms if a not in (type(None), Null))
        return cls(plain, type(None) in arms, Null in arms)

    @property
    def inline(self) -> bool:
        """True when a single primitive or literal arm is checked in the generated source."""
        return len(self.arms) == 1 and (self.arms[0] in _PRIMITIVES or _is_literal(self.arms[0]))


def _union_arms(t: Any) -> tuple[Any, ...]:
    if typing.get_origin(t) in (Union, types.UnionType):
        return tuple(a for arm in typing.get_args(t) for a in _union_arms(arm))
    return (t,)


def _is_literal(t: Any) -> bool:
    return typing.get_origin(t) is Literal


def _single_literal(t: Any) -> object:
    """The value of a one-value ``Literal`` (optional or not), else ``_ABSENT``."""
    arms = [a for a in _union_arms(t) if a is not type(None)]
    if len(arms) == 1 and _is_literal(arms[0]) and len(typing.get_args(arms[0])) == 1:
        return typing.get_args(arms[0])[0]
    return _ABSENT


# -- structuring ------------------------------------------------------------------------------


def structure_function(cls: type, hook_for: HookFor, strict: Strict | None = None) -> Fn:
    """Compile the structure function of the attrs model ``cls`` (strict: see the header)."""
    hints = typing.get_type_hints(cls)
    fields = [f for f in attrs.fields(cls) if f.name != "_extra"]
    server_required = strict.required.get(cls, frozenset()) if strict is not None else frozenset()
    names: dict[str, object] = {
        "_cls": cls,
        "_twin": _twin_of(cls),
        "_new": object.__new__,
        "_Mismatch": Mismatch,
        "_wrong": _wrong,
        "_not_allowed": not_allowed,
        "_missing": _missing,
        "_unknown": _unknown,
        "_extras": _extras,
        "_EMPTY": EMPTY_EXTRA,
        "_NULL": NULL,
        "_known": frozenset(f.name for f in fields),
    }
    required = [f for f in fields if f.default is attrs.NOTHING or f.name in server_required]
    lines = [
        "def structure(o, _t=None):",
        "    if o.__class__ is not dict:",
        "        if o.__class__ is _cls: return o",
        "        if not isinstance(o, dict): raise _wrong('an object', o)",
        "    inst = _new(_twin)",
        f"    n = {len(required)}",
        "    try:",
    ]
    for f in fields:
        field_type = FieldType.of(hints[f.name])
        check = strict.checks.get((cls, f.name)) if strict is not None else None
        field = _field_lines(f, field_type, names, hook_for, f.name in server_required, check)
        lines += [f"        {line}" for line in field]
    lines += [
        "    except KeyError as exc:",
        "        raise _missing(exc.args[0]) from None",
        *(["    if len(o) != n: raise _unknown(o, _known)"] if strict is not None else []),
        "    inst._extra = _EMPTY if len(o) == n else _extras(o, _known)",
        "    inst.__class__ = _cls",
        "    return inst",
    ]
    return _compile(lines, names, f"structure_{cls.__name__}")


def _twin_of(cls: type) -> type:
    """A plain class with ``cls``'s slots: filled by attribute stores, then retagged as ``cls``.

    Why: a frozen attrs instance can only be filled through ``object.__setattr__`` or its slot
    descriptors, a C call per field; a plain slotted class takes specialised attribute stores.
    On this protocol's small events that is a quarter of the decode cost. CPython allows
    ``__class__`` assignment between heap types with the same slots (and no weakref slot,
    hence ``weakref_slot=False`` on the models); the result is an ordinary ``cls`` instance.
    """
    twin = type(f"{cls.__name__}Twin", (), {"__slots__": cls.__slots__})  # type: ignore[attr-defined]
    probe: object = object.__new__(twin)
    probe.__class__ = cls  # fails here, at import, if the layouts ever stop matching
    return twin


def _field_lines(
    f: attrs.Attribute[Any],
    t: FieldType,
    names: dict[str, object],
    hook_for: HookFor,
    server_required: bool = False,
    extra_check: Callable[[Any], None] | None = None,
) -> list[str]:
    key = f.name
    if f.default is not attrs.NOTHING and _single_literal(f.type) == f.default:
        return _tag_lines(f, t, names)
    check = _check_lines(key, t, names, hook_for)
    if extra_check is not None:
        names[f"_c_{key}"] = extra_check
        check += [
            "try:",
            f"    _c_{key}(v)",
            "except _Mismatch as exc:",
            f"    exc.path.append({key!r}); raise",
        ]
    if f.default is attrs.NOTHING or server_required:
        return [f"v = o[{key!r}]", *check, f"inst.{key} = v"]
    if_null = "_NULL" if t.nullable else "None"
    return [
        f"v = o.get({key!r}, _ABSENT)",
        "if v is _ABSENT:",
        f"    inst.{key} = {_default_source(f, names)}",
        "elif v is None:",
        f"    n += 1; inst.{key} = {if_null}",
        "else:",
        "    n += 1",
        *(f"    {line}" for line in check),
        f"    inst.{key} = v",
    ]


def _tag_lines(f: attrs.Attribute[Any], t: FieldType, names: dict[str, object]) -> list[str]:
    """A tag (``type``) checks against its one value and stores the shared constant."""
    key = f.name
    names[f"_tag_{key}"] = f.default
    names[f"_allowed_{key}"] = (f.default,)
    none_ok = "n += 1; tag = None" if t.optional else f"raise _wrong('a string', v, {key!r})"
    return [
        f"v = o.get({key!r}, _ABSENT)",
        f"tag = _tag_{key}",
        "if v is _ABSENT: pass",
        "elif v == tag: n += 1",
        f"elif v is None: {none_ok}",
        f"else: raise _not_allowed(_allowed_{key}, v, {key!r})",
        f"inst.{key} = tag",
    ]


def _default_source(f: attrs.Attribute[Any], names: dict[str, object]) -> str:
    names[f"_default_{f.name}"] = f.default
    return f"_default_{f.name}"


def _check_lines(key: str, t: FieldType, names: dict[str, object], hook_for: HookFor) -> list[str]:
    if t.arms == (JsonValue,):
        return []
    if t.inline:
        arm = t.arms[0]
        if _is_literal(arm):
            return _literal_lines(key, arm, names)
        return [f"if {_primitive_test(arm)}: raise _wrong({_PRIMITIVES[arm]!r}, v, {key!r})"]
    names[f"_s_{key}"] = _arm_function(t.arms, hook_for)
    return [
        "try:",
        f"    v = _s_{key}(v)",
        "except _Mismatch as exc:",
        f"    exc.path.append({key!r}); raise",
    ]


def _primitive_test(arm: type) -> str:
    if arm is float:
        return "v.__class__ is not float and v.__class__ is not int"
    return f"v.__class__ is not {arm.__name__}"


def _literal_lines(key: str, arm: Any, names: dict[str, object]) -> list[str]:
    values = typing.get_args(arm)
    names[f"_values_{key}"] = frozenset(values)
    names[f"_allowed_{key}"] = values
    kinds = {type(v) for v in values}
    kind_test = " and ".join(f"v.__class__ is not {k.__name__}" for k in kinds)
    return [
        f"if ({kind_test}) or v not in _values_{key}:",
        f"    raise _not_allowed(_allowed_{key}, v, {key!r})",
    ]


def _extras(o: Mapping[str, JsonValue], known: frozenset[str]) -> Mapping[str, JsonValue]:
    return {k: v for k, v in o.items() if k not in known}


def _compile(lines: list[str], names: dict[str, object], name: str) -> Fn:
    names.setdefault("_ABSENT", _ABSENT)
    # Every helper becomes a keyword default, so the body reads fast locals, not globals.
    helpers = ", ".join(f"{key}={key}" for key in names)
    header = lines[0].removesuffix("):") + f", *, {helpers}):"
    source = "\n".join([header, *lines[1:]])
    code = compile(source, f"<rtbus {name}>", "exec")
    namespace: dict[str, Any] = dict(names)
    exec(code, namespace)  # the cattrs technique: a function written for one class
    fn: Fn = namespace[lines[0].split("(")[0].removeprefix("def ")]
    return fn


def _arm_function(arms: tuple[Any, ...], hook_for: HookFor) -> Fn:
    """The structure function of one non-inline field type (model, tuple, mapping, union)."""
    if len(arms) > 1:
        return _union_function(arms, hook_for)
    arm = arms[0]
    origin = typing.get_origin(arm)
    if origin is tuple:
        return _tuple_function(FieldType.of(typing.get_args(arm)[0]), hook_for)
    if origin is Mapping:
        return _mapping_function(FieldType.of(typing.get_args(arm)[1]), hook_for)
    if arm in _PRIMITIVES or _is_literal(arm):
        return _scalar_function(arm)
    return hook_for(arm)


def _scalar_function(arm: Any) -> Fn:
    names: dict[str, object] = {"_wrong": _wrong, "_not_allowed": not_allowed}
    if _is_literal(arm):
        check = _literal_lines("value", arm, names)
    else:
        check = [f"if {_primitive_test(arm)}: raise _wrong({_PRIMITIVES[arm]!r}, v)"]
    check = [line.replace(", 'value')", ")") for line in check]
    return _compile(["def scalar(v):", *(f"    {c}" for c in check), "    return v"], names, "s")


def _tuple_function(item: FieldType, hook_for: HookFor) -> Fn:
    structure_item = _arm_function(item.arms, hook_for)

    def structure_tuple(v: object) -> tuple[object, ...]:
        if not isinstance(v, list | tuple):
            raise _wrong("an array", v)
        out = []
        for index, element in enumerate(v):
            try:
                out.append(structure_item(element))
            except Mismatch as exc:
                exc.path.append(index)
                raise
        return tuple(out)

    return structure_tuple


def _mapping_function(value: FieldType, hook_for: HookFor) -> Fn:
    structure_value = _arm_function(value.arms, hook_for)

    def structure_mapping(v: object) -> dict[str, object]:
        if not isinstance(v, dict):
            raise _wrong("an object", v)
        out = {}
        for key, element in v.items():
            try:
                out[key] = structure_value(element)
            except Mismatch as exc:
                exc.path.append(key)
                raise
        return out

    return structure_mapping


def _union_function(arms: tuple[Any, ...], hook_for: HookFor) -> Fn:
    """Dispatch on the JSON kind, then (for objects) on the ``type`` tag."""
    by_kind: dict[type, Fn] = {}
    models = [a for a in arms if attrs.has(a)]
    if models:
        one = len(models) == 1
        by_kind[dict] = hook_for(models[0]) if one else _tagged_function(models, hook_for)
        by_kind.update(dict.fromkeys(models, _identity))
    for arm in arms:
        origin = typing.get_origin(arm)
        if origin is tuple:
            by_kind[list] = by_kind[tuple] = _arm_function((arm,), hook_for)
        elif arm in _PRIMITIVES and arm is not str:
            by_kind[arm] = _identity
            if arm is float:
                by_kind.setdefault(int, _identity)
    if str in arms:
        by_kind[str] = _identity
    elif any(_is_literal(a) for a in arms):
        values = tuple(v for a in arms if _is_literal(a) for v in typing.get_args(a))
        by_kind[str] = _scalar_function(Literal[values])
    _require_handled(arms, by_kind)
    expected = " or ".join(sorted({_KINDS[k] for k in by_kind if k in _KINDS}))

    def structure_union(v: object) -> object:
        structure = by_kind.get(v.__class__)
        if structure is None:
            raise _wrong(expected, v)
        return structure(v)

    return structure_union


def _require_handled(arms: tuple[Any, ...], by_kind: Mapping[type, Fn]) -> None:
    # A schema change the compiler does not know must fail at import, not drop data later.
    for arm in arms:
        kind = str if _is_literal(arm) else typing.get_origin(arm) or arm
        if kind not in by_kind:
            raise TypeError(f"no structure rule for {arm!r} in a union")


def _identity(v: object) -> object:
    return v


def _tagged_function(models: list[type], hook_for: HookFor) -> Fn:
    """Pick a model by ``type``; models sharing a ``type`` are told apart by ``role``."""
    groups: dict[object, list[type]] = {}
    for model in models:
        groups.setdefault(_tag_of(model, "type"), []).append(model)
    table: dict[object, Fn] = {}
    for tag, group in groups.items():
        table[tag] = hook_for(group[0]) if len(group) == 1 else _role_function(group, hook_for)
    default = next((m for m in models if not _tag_required(m)), None)
    missing = hook_for(default) if default is not None else None
    return _tag_dispatch("type", table, missing)


def _role_function(models: list[type], hook_for: HookFor) -> Fn:
    table: dict[object, Fn] = {_tag_of(model, "role"): hook_for(model) for model in models}
    return _tag_dispatch("role", table, None)


def _tag_dispatch(key: str, table: Mapping[object, Fn], missing: Fn | None) -> Fn:
    allowed = tuple(table)

    def dispatch(v: object) -> object:
        if not isinstance(v, dict):
            raise _wrong("an object", v)
        tag = v.get(key)
        if tag is None and missing is not None:
            return missing(v)
        structure = table.get(tag) if tag.__class__ is str else None
        if structure is None:
            raise (not_allowed(allowed, tag, key) if tag is not None else _missing(key))
        return structure(v)

    return dispatch


def _tag_of(model: type, key: str) -> object:
    hints = typing.get_type_hints(model)
    tag = _single_literal(hints[key]) if key in hints else _ABSENT
    if tag is _ABSENT:
        raise TypeError(f"{model.__name__} has no single-valued {key!r} to dispatch on")
    return tag


def _tag_required(model: type) -> bool:
    return type(None) not in _union_arms(typing.get_type_hints(model)["type"])


# -- unstructuring ----------------------------------------------------------------------------


def unstructure_function(cls: type, hook_for: HookFor) -> Fn:
    """Compile the function that turns a model instance into a JSON-ready dict."""
    hints = typing.get_type_hints(cls)
    names: dict[str, object] = {"_NULL": NULL}
    lines = ["def unstructure(inst, _t=None):", "    d = {}"]
    for f in attrs.fields(cls):
        if f.name == "_extra":
            continue
        t = FieldType.of(hints[f.name])
        value = "v"
        if not (t.inline or t.arms == (JsonValue,)):
            names[f"_u_{f.name}"] = _arm_unstructure(t.arms, hook_for)
            value = f"_u_{f.name}(v)"
        if t.nullable:
            value = f"None if v is _NULL else {value}"
        # A required field is always written: only a free-form JSON one can hold None (null).
        guard = "" if f.default is attrs.NOTHING else "if v is not None: "
        lines += [f"    v = inst.{f.name}", f"    {guard}d[{f.name!r}] = {value}"]
    lines += ["    e = inst._extra", "    if e: d.update(e)", "    return d"]
    return _compile(lines, names, f"unstructure_{cls.__name__}")


def _arm_unstructure(arms: tuple[Any, ...], hook_for: HookFor) -> Fn:
    if len(arms) > 1:
        return union_unstructure_function(hook_for)
    arm = arms[0]
    origin = typing.get_origin(arm)
    if origin is tuple:
        item = _arm_unstructure(FieldType.of(typing.get_args(arm)[0]).arms, hook_for)
        # orjson writes a tuple of scalars as an array by itself.
        return _identity if item is _identity else lambda v: [item(x) for x in v]
    if origin is Mapping:
        value = _arm_unstructure(FieldType.of(typing.get_args(arm)[1]).arms, hook_for)
        return lambda v: {k: value(x) for k, x in v.items()}
    if attrs.has(arm):
        return hook_for(arm)
    return _identity


def union_unstructure_function(hook_for: HookFor) -> Fn:
    """Unstructure by the value's runtime class: models through their hook, scalars as is."""
    cache: dict[type, Fn] = {}

    def unstructure_any(v: object) -> object:
        fn = cache.get(v.__class__)
        if fn is None:
            fn = cache[v.__class__] = hook_for(v.__class__) if attrs.has(type(v)) else _identity
        return fn(v)

    return unstructure_any
