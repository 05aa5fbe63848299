"""The restart tables, checked against the invariants stated in ``_strategy``."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rtbus.actors._strategy import (
    AFFECTED,
    RESTART_ON,
    RESTARTED_WITH_SIBLING,
    STRATEGIES,
    Strategy,
)


@st.composite
def positions(draw: st.DrawFn) -> tuple[int, int]:
    count = draw(st.integers(min_value=1, max_value=50))
    return count, draw(st.integers(min_value=0, max_value=count - 1))


@given(strategy=st.sampled_from(STRATEGIES), where=positions())
def test_the_failed_child_is_always_in_its_group(
    strategy: Strategy, where: tuple[int, int]
) -> None:
    count, failed = where
    group = AFFECTED[strategy](count, failed)
    assert failed in group
    assert list(group) == sorted(set(group))
    assert all(0 <= i < count for i in group)


@given(where=positions())
def test_each_strategy_takes_down_what_otp_takes_down(where: tuple[int, int]) -> None:
    count, failed = where
    assert list(AFFECTED["one_for_one"](count, failed)) == [failed]
    assert list(AFFECTED["one_for_all"](count, failed)) == list(range(count))
    assert list(AFFECTED["rest_for_one"](count, failed)) == list(range(failed, count))


def test_restart_types() -> None:
    assert dict(RESTART_ON) == {
        "permanent": {"normal", "failed", "fatal"},
        "transient": {"failed"},
        "temporary": set(),
    }
    assert [t for t, restarted in RESTARTED_WITH_SIBLING.items() if not restarted] == ["temporary"]
