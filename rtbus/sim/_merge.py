"""Merging a validated ``session.update`` into the session, as the real service does.

Objects merge key by key and lists are replaced; two values are replaced whole instead: an
audio ``format`` (so ``{"type": "audio/pcmu"}`` drops the PCM ``rate``) and a
``turn_detection`` of a new type, which starts from that type's defaults.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from ._defaults import TURN_DETECTION_DEFAULTS

__all__ = ["merge_session"]

JSONObject = dict[str, object]


def merge_session(
    base: JSONObject,
    update: JSONObject,
    *,
    turn_defaults: Mapping[str, JSONObject] = TURN_DETECTION_DEFAULTS,
) -> JSONObject:
    """``base`` with the (already validated) ``update`` merged in; neither is mutated.
    ``turn_defaults`` are what a new type of turn detection starts from."""
    merged = dict(base)
    for key, value in update.items():
        current = merged.get(key)
        if key == "format":
            merged[key] = _merge_format(value)
        elif key == "turn_detection":
            merged[key] = _merge_turn_detection(current, value, turn_defaults)
        elif isinstance(current, dict) and isinstance(value, dict):
            merged[key] = merge_session(current, value, turn_defaults=turn_defaults)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _merge_format(value: object) -> object:
    assert isinstance(value, dict)
    if value["type"] == "audio/pcm":
        return {"type": "audio/pcm", "rate": 24_000, **value}
    return dict(value)


def _merge_turn_detection(
    current: object, value: object, defaults: Mapping[str, JSONObject]
) -> object:
    if not isinstance(value, dict):
        return None
    same_type = isinstance(current, dict) and current.get("type") == value["type"]
    base = current if same_type else defaults[str(value["type"])]
    assert isinstance(base, dict)
    return {**base, **value}
