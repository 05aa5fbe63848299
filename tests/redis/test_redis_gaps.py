"""The sequence-gap tracker on its own: no Redis, no clock, every rule one test."""

from __future__ import annotations

from rtbus.redis._gaps import Gap, SeqTracker


def test_a_jump_is_a_gap_once_settled_after_the_read_that_found_it() -> None:
    seqs = SeqTracker()
    for seq in (1, 2, 6):
        assert seqs.see("n", "s", seq, 1.0, read=1) is None
    assert seqs.settle(horizon=1) == []  # found by read 1: not settled before read 2
    assert seqs.settle(horizon=2) == [Gap("n", "s", 3, 5, 3)]
    assert seqs.settle(horizon=9) == []  # reported once


def test_numbers_that_come_late_from_another_stream_fill_their_hole() -> None:
    seqs = SeqTracker()
    for seq in (1, 4, 2, 6, 3):  # audio and events read side by side
        seqs.see("n", "s", seq, 1.0, read=1)
    assert seqs.settle(horizon=5) == [Gap("n", "s", 5, 5, 1)]


def test_duplicates_are_ignored_and_a_later_restart_of_the_numbers_is_a_reset() -> None:
    seqs = SeqTracker()
    for seq in (1, 2, 3):
        seqs.see("n", "s", seq, 1.0, read=1)
    assert seqs.see("n", "s", 2, 1.0, read=2) is None  # a copy: published with the first
    assert seqs.see("n", "s", 1, 9.0, read=2) == Gap("n", "s", 1, 3, 0, reset=True)
    assert seqs.see("n", "s", 2, 9.0, read=2) is None  # counting again from the reset
    assert seqs.settle(horizon=9) == []


def test_sessions_and_nodes_are_tracked_apart() -> None:
    seqs = SeqTracker()
    seqs.see("a", "s", 1, 1.0, read=1)
    seqs.see("b", "s", 5, 1.0, read=1)  # first sight of b/s: no gap before it
    seqs.see("a", "t", 1, 1.0, read=1)
    seqs.see("a", "s", 3, 1.0, read=1)
    assert seqs.settle(horizon=2) == [Gap("a", "s", 2, 2, 1)]


def test_clearing_forgets_holes_and_bounds_report_what_they_push_out() -> None:
    seqs = SeqTracker(max_sessions=1, max_holes=1)
    seqs.see("n", "s", 1, 1.0, read=1)
    seqs.see("n", "s", 3, 1.0, read=1)
    seqs.see("n", "s", 5, 1.0, read=1)  # a second hole pushes the first out
    seqs.see("n", "t", 1, 1.0, read=1)  # a second session pushes s out, with its hole
    assert seqs.settle(horizon=0) == [Gap("n", "s", 2, 2, 1), Gap("n", "s", 4, 4, 1)]
    seqs.see("n", "t", 4, 1.0, read=1)
    seqs.clear()
    assert seqs.settle(horizon=9) == []
