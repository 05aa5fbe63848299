"""``young_gc_threshold``: the youngest generation's threshold for a block, restored after."""

from __future__ import annotations

import gc

import pytest

from rtbus.service import young_gc_threshold


def test_the_threshold_holds_within_the_block_and_is_restored_after() -> None:
    before = gc.get_threshold()
    with young_gc_threshold(20_000):
        assert gc.get_threshold() == (20_000, *before[1:])
    assert gc.get_threshold() == before


def test_zero_leaves_the_threshold_as_it_is() -> None:
    before = gc.get_threshold()
    with young_gc_threshold(0):
        assert gc.get_threshold() == before
    assert gc.get_threshold() == before


def test_the_threshold_is_restored_when_the_block_raises() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), young_gc_threshold(5_000):
        raise RuntimeError("boom")
    assert gc.get_threshold() == before
