"""The bus's exceptions, named for whose fault they are.

* ``BusArgumentError`` -- the caller asked for something the bus cannot do: a bad overflow
  policy, a ``maxsize`` below 1, a malformed type glob, an empty session id. Raised at the
  call, never later; it names the argument.
* ``SubscriberOverflowError`` -- a subscriber under the ``disconnect`` policy fell so far behind
  that its buffer overflowed. Raised at the subscriber's next read, so that under supervision
  it is the slow worker that fails, not the publisher.
* ``SubscriberTooSlowError`` -- a ``block`` subscriber with a ``block_timeout`` kept a
  publisher waiting past it, so the subscription was cut loose. A subclass of
  ``SubscriberOverflowError``: code that handles a subscriber cut for falling behind handles
  both, and the name says which.

All sit under ``RtbusError``; messages carry only argument names, policies and counts.
"""

from __future__ import annotations

from rtbus.protocol import RtbusError

__all__ = ["BusArgumentError", "SubscriberOverflowError", "SubscriberTooSlowError"]


class BusArgumentError(RtbusError, ValueError):
    """Raised when an argument to ``Bus.subscribe`` or ``Bus.publish`` is invalid.

    ``argument`` names the parameter (``"overflow"``, ``"maxsize"``, ``"types"``, ...),
    ``problem`` says what is wrong with it.
    """

    def __init__(self, argument: str, problem: str) -> None:
        super().__init__(f"{argument}: {problem}", argument, problem)
        self.argument = argument
        self.problem = problem

    def __str__(self) -> str:
        return str(self.args[0])


class SubscriberOverflowError(RtbusError):
    """Raised when reading a ``disconnect`` subscription whose buffer overflowed.

    The subscription was closed at the moment of overflow; ``maxsize`` is its buffer size and
    ``dropped`` the number of envelopes it never delivered (the one that did not fit and those
    still queued). Every later read raises it again: subscribe afresh to resume.
    """

    def __init__(self, maxsize: int, dropped: int) -> None:
        super().__init__(
            f"subscriber fell behind: its buffer of {maxsize} overflowed under the 'disconnect' "
            f"policy and the subscription was closed ({dropped} envelopes undelivered)",
            maxsize,
            dropped,
        )
        self.maxsize = maxsize
        self.dropped = dropped

    def __str__(self) -> str:
        return str(self.args[0])


class SubscriberTooSlowError(SubscriberOverflowError):
    """Raised when reading a ``block`` subscription that was cut loose for being too slow.

    A publisher waited ``block_timeout`` seconds for room in its buffer of ``maxsize``; the
    subscription was closed then, so the sessions publishing could go on. ``dropped`` is the
    number of envelopes it never delivered (those queued and those whose publishers were
    waiting). ``block_timeout`` is ``None`` when a gateway client did not learn it. Every
    later read raises it again: subscribe afresh (and read faster) to resume.
    """

    def __init__(self, maxsize: int, dropped: int, block_timeout: float | None) -> None:
        super().__init__(maxsize, dropped)
        waited = "its block_timeout" if block_timeout is None else f"{block_timeout:g}s"
        self.args = (
            f"subscriber too slow: a publisher waited {waited} for room in its buffer of "
            f"{maxsize} under the 'block' policy, so the subscription was closed "
            f"({dropped} envelopes undelivered)",
            maxsize,
            dropped,
            block_timeout,
        )
        self.block_timeout = block_timeout
