"""rtbus._unwrapping: the exception that matters out of real nurseries, and chains of causes."""

from __future__ import annotations

import pytest
import trio

from rtbus._unwrapping import cause_chain, leaves, sole_exception, unwrap_lone_exception


async def fail(message: str) -> None:
    try:
        raise KeyError(message)
    except KeyError as exc:
        raise ValueError(message) from exc


async def one_failure() -> None:
    with unwrap_lone_exception():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fail, "the one failure")
            await trio.sleep_forever()


async def two_failures() -> None:
    with unwrap_lone_exception():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fail, "a")
            nursery.start_soon(fail, "b")


async def test_a_lone_failure_comes_out_as_itself_with_its_cause() -> None:
    with pytest.raises(ValueError, match="the one failure") as caught:
        await one_failure()
    assert isinstance(caught.value.__cause__, KeyError)
    assert not any(isinstance(exc, BaseExceptionGroup) for exc in _contexts(caught.value))


async def test_several_failures_stay_a_group() -> None:
    with pytest.raises(ExceptionGroup) as caught:
        await two_failures()
    assert sorted(str(exc) for exc in leaves(caught.value)) == ["a", "b"]
    assert sole_exception(caught.value) is None


def test_leaves_are_in_order_at_any_depth() -> None:
    a, b, c = ValueError("a"), KeyError("b"), OSError("c")
    group = BaseExceptionGroup("outer", [a, BaseExceptionGroup("inner", [b]), c])
    assert list(leaves(group)) == [a, b, c]
    assert list(leaves(a)) == [a]
    assert sole_exception(BaseExceptionGroup("one", [BaseExceptionGroup("deep", [b])])) is b


def test_the_cause_chain_ends_at_a_cycle() -> None:
    first, second = ValueError("first"), KeyError("second")
    first.__cause__, second.__cause__ = second, first
    assert list(cause_chain(first)) == [first, second]
    assert list(cause_chain(second)) == [second, first]


def _contexts(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    context = exc.__context__
    while context is not None and len(found) < 10:
        found.append(context)
        context = context.__context__
    return found
