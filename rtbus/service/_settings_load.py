"""Loading ``Settings``: a TOML file, then the environment, then the command line.

Precedence, lowest first: the defaults, the file, the vendors' variables (``OPENAI_API_KEY``,
``AZURE_OPENAI_*`` -- only for the upstream kind they belong to; ``OPENAI_WEBHOOK_SECRET`` for
``calls.webhook_secret``), ``RTBUS_<TABLE>_<KEY>``
variables (``RTBUS_HTTP_PORT=9000``, ``RTBUS_SERVICE_SESSION_BACKOFF_BASE=1``), and last the
command line's overrides. An empty variable counts as unset.

Invariants:

* The file is strict (``_settings_convert``): a typo or a wrong type is an error, never ignored.
* Every problem is reported, not just the first: ``SettingsError.problems`` holds one
  ``ConfigError`` per problem, each naming the dotted key (``sessions[1].model``) or the
  variable it came from, and saying what was expected.
* No secret reaches a message: a wrong value under a secret key is never quoted, and every
  secret the file or the environment holds is scrubbed from every message.
"""

from __future__ import annotations

import difflib
import functools
import os
import tomllib
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from rtbus.protocol import ConfigError, redact

from ._settings import Settings, cross_table_problems
from ._settings_convert import EXPECTED, SECRET_KEYS, is_secret, scalar, structure
from ._settings_convert import problems as structuring_problems

__all__ = ["SettingsError", "load_settings"]

# Only the kind each belongs to reads these; the rest of the world's variables stay out.
_VENDOR_VARIABLES: Mapping[str, Mapping[str, str]] = {
    "openai": {
        "OPENAI_API_KEY": "api_key",
        "OPENAI_BASE_URL": "base_url",
        "OPENAI_ORG_ID": "organization",
        "OPENAI_PROJECT_ID": "project",
    },
    "azure": {
        "AZURE_OPENAI_API_KEY": "api_key",
        "AZURE_OPENAI_AD_TOKEN": "ad_token",
        "AZURE_OPENAI_ENDPOINT": "endpoint",
        "OPENAI_API_VERSION": "api_version",
    },
}
# Read whatever the upstream: the secret OpenAI signs call webhooks with.
_WEBHOOK_VARIABLES: Mapping[str, str] = {"OPENAI_WEBHOOK_SECRET": "calls.webhook_secret"}
_COMMAND_LINE = "the command line"
#: Shorter than this, a configured secret is refused: it would be a word, not a secret.
MIN_SECRET_LENGTH = 8


class SettingsError(ConfigError):
    """Raised by ``load_settings`` when the configuration is wrong; ``problems`` lists every
    problem (one ``ConfigError`` each), and ``str()`` shows them one per line."""

    def __init__(self, problems: tuple[ConfigError, ...]) -> None:
        super().__init__(problems[0].key, problems[0].problem)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


@attrs.frozen
class _Change:
    """One value set from outside the file: its dotted key, and which variable or flag set it."""

    key: str
    value: object
    source: str


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """The settings in the TOML file at ``path`` (none: the defaults), with the environment
    and ``overrides`` (dotted keys, e.g. ``{"http.port": 0}``: the command line's) applied.

    Raises ``SettingsError`` listing every problem; ``ConfigError`` naming the file when it
    cannot be read or is not TOML.
    """
    raw = _read_toml(Path(path)) if path is not None else {}
    env = os.environ if environ is None else environ
    problems: list[ConfigError] = []
    changes = _environment_changes(raw, env, problems)
    changes += [_Change(k, v, _COMMAND_LINE) for k, v in (overrides or {}).items()]
    for change in changes:
        _assign(raw, change.key, change.value)
    settings = None
    sources = {c.key: c.source for c in changes}
    problems += [_problem(key, text, sources) for key, text in _short_secrets(raw)]
    try:
        settings = structure(raw)
    except Exception as exc:  # every structuring failure becomes a problem
        problems += [_problem(key, text, sources) for key, text in structuring_problems(exc)]
    # Checked on the raw tables too: a broken table elsewhere must not hide them.
    problems += [p for p in _raw_cross_table_problems(raw) if _unseen(p, problems)]
    if problems or settings is None:
        raise SettingsError(_scrubbed(problems, raw, env))
    return settings


def _short_secrets(raw: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, str]]:
    """A secret shorter than ``MIN_SECRET_LENGTH``: too guessable to be one, and too short
    to scrub from messages without scrubbing words."""
    for key, value in raw.items():
        dotted = f"{path}.{key}" if path else key
        if isinstance(value, dict):
            yield from _short_secrets(value, dotted)
        elif key in SECRET_KEYS and isinstance(value, str) and 0 < len(value) < MIN_SECRET_LENGTH:
            yield dotted, f"is too short to be a secret (at least {MIN_SECRET_LENGTH} characters)"


def _raw_cross_table_problems(raw: Mapping[str, Any]) -> list[ConfigError]:
    bus = raw.get("bus")
    redis = isinstance(bus, dict) and bus.get("redis") is not None
    sessions = raw.get("sessions")
    tables = sessions if isinstance(sessions, list) else []
    ids = [table.get("id") if isinstance(table, dict) else None for table in tables]
    return cross_table_problems(raw.get("placement") is not None, redis, ids)


def _unseen(problem: ConfigError, problems: list[ConfigError]) -> bool:
    return all((p.key, p.problem) != (problem.key, problem.problem) for p in problems)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), f"cannot be read: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"is not valid TOML: {exc}") from None


def _assign(raw: dict[str, Any], key: str, value: object) -> None:
    *tables, leaf = key.split(".")
    for name in tables:
        inner = raw.setdefault(name, {})
        if not isinstance(inner, dict):
            return  # the file's own value is wrong; structuring reports it
        raw = inner
    raw[leaf] = value


def _problem(key: str, text: str, sources: Mapping[str, str]) -> ConfigError:
    source = sources.get(key)
    return ConfigError(key, f"{text} (from {source})" if source else text)


def _scrubbed(
    problems: list[ConfigError], raw: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[ConfigError, ...]:
    secrets = [*_secret_values(raw), *(env.get(v, "") for v in _secret_variables())]
    return tuple(ConfigError(p.key, redact(p.problem, secrets)) for p in problems)


def _secret_values(raw: Mapping[str, Any]) -> Iterator[str]:
    for key, value in raw.items():
        if isinstance(value, dict):
            yield from _secret_values(value)
        elif key in SECRET_KEYS and isinstance(value, str):
            yield value


def _secret_variables() -> Iterator[str]:
    for names in _VENDOR_VARIABLES.values():
        yield from (name for name, key in names.items() if key in SECRET_KEYS)
    yield from _WEBHOOK_VARIABLES
    yield from (name for name, (key, _) in _env_leaves().items() if is_secret(key))


# --- the environment -----------------------------------------------------------------------


def _environment_changes(
    raw: Mapping[str, Any], env: Mapping[str, str], problems: list[ConfigError]
) -> list[_Change]:
    kind = env.get("RTBUS_UPSTREAM_KIND") or _file_kind(raw)
    vendor = _VENDOR_VARIABLES.get(kind, {})
    changes = [_Change(f"upstream.{k}", env[v], v) for v, k in vendor.items() if env.get(v)]
    changes += [_Change(k, env[v], v) for v, k in _WEBHOOK_VARIABLES.items() if env.get(v)]
    leaves, prefixes = _env_leaves(), _env_prefixes()
    for name in sorted(v for v in env if env[v] and v.startswith(prefixes)):
        try:
            changes.append(_env_change(name, env[name], leaves))
        except ConfigError as exc:
            problems.append(exc)
    return changes


def _file_kind(raw: Mapping[str, Any]) -> str:
    upstream = raw.get("upstream")
    kind = upstream.get("kind") if isinstance(upstream, dict) else None
    return kind if isinstance(kind, str) else "sim"


def _env_change(name: str, text: str, leaves: Mapping[str, tuple[str, Any]]) -> _Change:
    if name not in leaves:
        near = difflib.get_close_matches(name, leaves, n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise ConfigError(name, f"is not a setting{hint}")
    key, type_ = leaves[name]
    return _Change(key, _from_text(name, text, type_), name)


def _from_text(name: str, text: str, type_: Any) -> object:
    parse = _TEXT_PARSERS.get(scalar(type_), str)
    try:
        return parse(text)
    except ValueError:
        # Only numbers and booleans fail here: a secret, being text, never does.
        raise ConfigError(name, f"expected {EXPECTED[scalar(type_)]}, got {text!r}") from None


def _boolean(text: str) -> bool:
    word = text.strip().lower()
    if word in {"true", "1", "yes", "on"}:
        return True
    if word in {"false", "0", "no", "off"}:
        return False
    raise ValueError(text)


_TEXT_PARSERS: Mapping[Any, Callable[[str], object]] = {int: int, float: float, bool: _boolean}


@functools.cache
def _env_leaves() -> Mapping[str, tuple[str, Any]]:
    """``RTBUS_HTTP_PORT`` -> ``("http.port", int)``, for every scalar setting."""
    leaves: dict[str, tuple[str, Any]] = {"RTBUS_UPSTREAM_KIND": ("upstream.kind", str)}
    for field in attrs.fields(attrs.resolve_types(Settings)):
        tables = typing.get_args(field.type) if field.name == "upstream" else (scalar(field.type),)
        for table in tables:
            leaves.update(_table_leaves(table, field.name))
    return leaves


def _table_leaves(table: Any, path: str) -> Iterator[tuple[str, tuple[str, Any]]]:
    if not attrs.has(table):
        return
    for field in attrs.fields(attrs.resolve_types(table)):
        key = f"{path}.{field.name}"
        if attrs.has(scalar(field.type)):  # a table, or an optional one ([bus.redis])
            yield from _table_leaves(scalar(field.type), key)
        elif scalar(field.type) in EXPECTED:
            yield "RTBUS_" + key.replace(".", "_").upper(), (key, field.type)


@functools.cache
def _env_prefixes() -> tuple[str, ...]:
    return tuple(f"RTBUS_{f.name.upper()}_" for f in attrs.fields(Settings))
