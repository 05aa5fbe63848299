"""The response sequencer, driven synchronously (it is sans-IO)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rtbus.session._sequencer import ResponseSequencer


def test_second_request_waits_for_done() -> None:
    seq: ResponseSequencer[str] = ResponseSequencer()
    assert seq.request("c1", "first") == "first"
    assert seq.request("c2", "second") is None
    assert seq.held == 1
    seq.on_created("resp_1", in_band=True)
    assert seq.on_done("resp_other") is None
    assert seq.on_done("resp_1") == "second"
    assert seq.busy
    seq.on_created("resp_2", in_band=True)
    assert seq.on_done("resp_2") is None
    assert not seq.busy


def test_out_of_band_never_waits() -> None:
    seq: ResponseSequencer[str] = ResponseSequencer()
    assert seq.request("c1", "in-band") == "in-band"
    assert seq.request("c2", "oob", in_band=False) == "oob"
    seq.on_created("resp_oob", in_band=False)
    assert seq.busy, "an out-of-band response does not free the in-band slot"


def test_server_started_response_makes_upstream_busy() -> None:
    seq: ResponseSequencer[str] = ResponseSequencer()
    seq.on_created("resp_vad", in_band=True)
    assert seq.request("c1", "mine") is None
    assert seq.on_done("resp_vad") == "mine"


def test_refused_request_frees_the_upstream() -> None:
    seq: ResponseSequencer[str] = ResponseSequencer()
    seq.request("c1", "a")
    seq.request("c2", "b")
    assert seq.on_error("unrelated") is None
    assert seq.on_error(None) is None
    assert seq.on_error("c1") == "b"


def test_reset_and_drain() -> None:
    seq: ResponseSequencer[str] = ResponseSequencer()
    seq.request("c1", "a")
    seq.request("c2", "b")
    seq.request("c3", "c")
    assert seq.reset() == "b"
    assert seq.drain() == ["c"]
    assert seq.held == 0


@given(st.lists(st.sampled_from(["request", "created", "done"]), max_size=60))
def test_never_two_in_band_responses(steps: list[str]) -> None:
    """Whatever the order of events, at most one in-band request is out at a time, and
    requests go out in the order they were made."""
    seq: ResponseSequencer[int] = ResponseSequencer()
    made, outstanding = 0, 0
    sent: list[int] = []
    running: list[str] = []
    for step in steps:
        released: int | None = None
        if step == "request":
            made += 1
            released = seq.request(f"c{made}", made)
        elif step == "created" and outstanding and not running:
            running.append(f"r{len(sent)}")
            seq.on_created(running[-1], in_band=True)
        elif step == "done" and running:
            released = seq.on_done(running.pop())
            outstanding -= 1
        if released is not None:
            sent.append(released)
            outstanding += 1
        assert outstanding <= 1
    assert sent == sorted(sent)
    assert sent == list(range(1, len(sent) + 1))
