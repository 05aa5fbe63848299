"""Merging a validated ``session.update`` into the session, as the real service does.

Objects merge key by key and lists are replaced; two values are replaced whole instead: an
audio ``format`` (so ``{"type": "audio/pcmu"}`` drops the PCM ``rate``) and a
``turn_detection`` of a new type, which starts from that type's defaults.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from ._defaults import TURN_DETECTION_DEFAULTS

__all__ = ["merge_session"]

JSONObject = dict[str, object]


def merge_session(base: JSONObject, update: JSONObject) -> JSONObject:
    """``base`` with the (already validated) ``update`` merged in; neither is mutated."""
    merged = dict(base)
    for key, value in update.items():
        rule = _MERGE_RULES.get(key, _merge_value)
        merged[key] = rule(merged.get(key), value)
    return merged


def _merge_value(current: object, value: object) -> object:
    if isinstance(current, dict) and isinstance(value, dict):
        return merge_session(current, value)
    return copy.deepcopy(value)


def _merge_format(current: object, value: object) -> object:
    assert isinstance(value, dict)
    if value["type"] == "audio/pcm":
        return {"type": "audio/pcm", "rate": 24_000, **value}
    return dict(value)


def _merge_turn_detection(current: object, value: object) -> object:
    if not isinstance(value, dict):
        return None
    same_type = isinstance(current, dict) and current.get("type") == value["type"]
    base = current if same_type else TURN_DETECTION_DEFAULTS[str(value["type"])]
    assert isinstance(base, dict)
    return {**base, **value}


_MERGE_RULES: dict[str, Callable[[object, object], object]] = {
    "format": _merge_format,
    "turn_detection": _merge_turn_detection,
}
