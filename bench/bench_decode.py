"""Decode cost per event: rtbus's codec against ``orjson.loads`` alone and openai's own parse.

Run ``.venv/bin/python -m bench.bench_decode``. Two frames: a 100 ms audio delta (4,800 PCM16
bytes, base64, ~6.4 KB) and a small transcript delta. The openai column does what openai's
realtime connection does in ``parse_event``: ``construct_type_unchecked`` over ``json.loads``.
Each figure is the best of several repeats (timeit's advice: the minimum is the least noisy
estimate of what the code costs), all in one run so the ratios share one machine's mood.
"""

from __future__ import annotations

import base64
import json
import timeit
from collections.abc import Callable
from typing import Any, cast

import orjson
from openai._models import construct_type_unchecked
from openai.types.realtime import RealtimeServerEvent

from bench._table import Row
from rtbus.protocol._codec import decode_server_event

REPEATS = 7
TARGETS = {"audio delta": 1.5, "transcript delta": 3.0}
OPENAI_SPEEDUP_TARGET = 10.0

_COMMON = {
    "event_id": "event_B4o9RHSTWobB5OQdEHLTo",
    "response_id": "resp_B4o9RI7FFzjK6VnUXhBYL",
    "item_id": "item_B4o9RI1j0rH9Rq8Z4fhnh",
    "output_index": 0,
    "content_index": 0,
}


def frames() -> dict[str, bytes]:
    """The two frames measured, as the server sends them."""
    audio = base64.b64encode(bytes(range(256)) * 18 + bytes(192)).decode()  # 4,800 bytes
    return {
        "audio delta": orjson.dumps(
            {"type": "response.output_audio.delta", **_COMMON, "delta": audio}
        ),
        "transcript delta": orjson.dumps(
            {"type": "response.output_audio_transcript.delta", **_COMMON, "delta": " Hello"}
        ),
    }


def _openai_parse(data: bytes) -> object:
    return construct_type_unchecked(value=json.loads(data), type_=cast(Any, RealtimeServerEvent))


def best_seconds(fn: Callable[[], object]) -> float:
    """Best-of-``REPEATS`` seconds per call, with the loop count chosen as timeit does."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=REPEATS, number=number)) / number


def run() -> list[Row]:
    """Measure both frames; one row per parser and frame, ratios against ``orjson.loads``."""
    rows: list[Row] = []
    for case, data in frames().items():
        loads = best_seconds(lambda data=data: orjson.loads(data))  # type: ignore[misc]
        ours = best_seconds(lambda data=data: decode_server_event(data))  # type: ignore[misc]
        theirs = best_seconds(lambda data=data: _openai_parse(data))  # type: ignore[misc]
        rows += _rows(case, len(data), loads, ours, theirs)
    return rows


def _rows(case: str, size: int, loads: float, ours: float, theirs: float) -> list[Row]:
    label = f"{case} ({size:,} B)"
    target = TARGETS[case]
    speedup = theirs / ours
    return [
        Row("decode", f"{label}: orjson.loads", loads * 1e9, "ns/event", "1.00x"),
        Row(
            "decode",
            f"{label}: rtbus",
            ours * 1e9,
            "ns/event",
            f"{ours / loads:.2f}x loads",
            f"<= {target}x loads",
            _verdict(ours / loads <= target),
        ),
        Row(
            "decode",
            f"{label}: openai parse_event",
            theirs * 1e9,
            "ns/event",
            f"{speedup:.1f}x slower",
            f">= {OPENAI_SPEEDUP_TARGET:.0f}x slower",
            _verdict(speedup >= OPENAI_SPEEDUP_TARGET),
        ),
    ]


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> None:
    """Print the table."""
    from bench._table import render

    print(render(run()))


if __name__ == "__main__":
    main()
