"""The response sequencer, driven synchronously (it is sans-IO)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtbus.protocol import ResponseCreateEvent, ResponseCreateParams
from rtbus.session._sequencer import ResponseSequencer, is_in_band_response_create

CREATE: dict[str, Any] = {"type": "response.create"}
OUT_OF_BAND: dict[str, Any] = {"type": "response.create", "response": {"conversation": "none"}}
ITEM: dict[str, Any] = {"type": "conversation.item.delete", "item_id": "i1"}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (CREATE, True),
        ({"type": "response.create", "response": {"conversation": "auto"}}, True),
        (OUT_OF_BAND, False),
        (ITEM, False),
        (ResponseCreateEvent(), True),
        (ResponseCreateEvent(response=ResponseCreateParams(conversation="none")), False),
    ],
)
def test_in_band(event: Any, expected: bool) -> None:
    assert is_in_band_response_create(event) is expected


def test_second_request_waits_for_done() -> None:
    seq = ResponseSequencer()
    assert seq.may_send(CREATE)
    seq.sent(CREATE, "c1")
    assert not seq.may_send(CREATE)
    assert seq.may_send(ITEM), "only in-band requests wait"
    assert seq.may_send(OUT_OF_BAND)
    seq.on_created("resp_1", in_band=True)
    assert not seq.may_send(CREATE)
    seq.on_done("resp_other")
    assert not seq.may_send(CREATE)
    seq.on_done("resp_1")
    assert seq.may_send(CREATE)


def test_out_of_band_response_does_not_free_the_slot() -> None:
    seq = ResponseSequencer()
    seq.sent(CREATE, "c1")
    seq.sent(OUT_OF_BAND, "c2")
    seq.on_created("resp_oob", in_band=False)
    assert seq.busy


def test_server_started_response_makes_upstream_busy() -> None:
    seq = ResponseSequencer()
    seq.on_created("resp_vad", in_band=True)
    assert not seq.may_send(CREATE)
    seq.on_done("resp_vad")
    assert seq.may_send(CREATE)


def test_refused_request_frees_the_upstream() -> None:
    seq = ResponseSequencer()
    seq.sent(CREATE, "c1")
    seq.on_error("unrelated")
    seq.on_error(None)
    assert seq.busy
    seq.on_error("c1")
    assert not seq.busy


def test_reset() -> None:
    seq = ResponseSequencer()
    seq.sent(CREATE, "c1")
    seq.on_created("resp_1", in_band=True)
    seq.reset()
    assert not seq.busy


@given(st.lists(st.sampled_from(["send", "created", "done", "error"]), max_size=60))
def test_never_two_in_band_responses(steps: list[str]) -> None:
    """Whatever the server does, the writer never has two in-band requests out at once."""
    seq = ResponseSequencer()
    out: list[str] = []  # ids of requests sent and not yet finished
    running: list[str] = []
    for n, step in enumerate(steps):
        if step == "send" and seq.may_send(CREATE):
            seq.sent(CREATE, f"c{n}")
            out.append(f"c{n}")
        elif step == "created" and out and not running:
            running.append(f"r{n}")
            seq.on_created(running[-1], in_band=True)
        elif step == "done" and running:
            seq.on_done(running.pop())
            out.pop()
        elif step == "error" and out and not running:
            seq.on_error(out.pop())
        assert len(out) <= 1
