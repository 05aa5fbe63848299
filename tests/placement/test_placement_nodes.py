"""Placement against a real redis-server: two or three services on one simulator, each a
node of the control stream's group."""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import coredis
import pytest
import trio
from coredis.response.types import StreamEntry
from placement_support import (
    COREDIS_LEAKS_ON_FAILED_CONNECT,
    FAST,
    PASSWORD,
    Node,
    raw_client,
    redis_config,
    running_node,
)
from support.polling import eventually
from support.redis_server import RedisServer
from support.upstream import MODEL, upstream

from rtbus.actors import DuplicateChild
from rtbus.protocol import ConfigError
from rtbus.redis import RedisUnavailableError, open_link
from rtbus.service import Service, open_service
from rtbus.service._placement import (
    Placement,
    PlacementConfig,
    PlacementRefused,
    PlacementTimeout,
    open_placement,
    run_placement,
)
from rtbus.service._placement_wire import Outcome, PlacedSession
from rtbus.session import SessionState
from rtbus.sim import SimServer


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer.running(tmp_path, password=PASSWORD) as server:
        yield server


@pytest.fixture
def collect_garbage() -> Iterator[None]:
    """Collect the leaked streams while this test's warning filters still apply."""
    yield
    gc.collect()


async def registry(redis: RedisServer) -> dict[str, str]:
    async with raw_client(redis) as client:
        found = await client.hgetall("{rtbus}:sessions")
    return {k.decode(): v.decode() for k, v in found.items()}


def where(id: str, *nodes: Node) -> list[str]:
    return [node.name for node in nodes if id in node.session_ids()]


async def test_each_request_lands_on_exactly_one_node(sim: SimServer, redis: RedisServer) -> None:
    async with running_node(sim, redis, "a") as a, running_node(sim, redis, "b") as b:
        placed = []
        for n, requester in enumerate([a, b, a, b, a, b]):
            result = await requester.service.place_session(id=f"s{n}", model=MODEL)
            placed.append(result)
            # The requester holds the handle exactly when its own node took it.
            local = requester.service.sessions.get(result.id)
            assert result.session is local
            assert (local is not None) == (result.node == requester.name)
        for result in placed:
            assert where(result.id, a, b) == [result.node]
        assert await registry(redis) == {result.id: result.node for result in placed}


# -- room ------------------------------------------------------------------------------------


async def test_a_full_node_takes_no_request_and_a_request_nobody_takes_times_out(
    sim: SimServer, redis: RedisServer
) -> None:
    async with (
        running_node(sim, redis, "small", max_sessions=1, request_timeout=2.0) as small,
        running_node(sim, redis, "big", max_sessions=3, request_timeout=2.0) as big,
    ):
        for n in range(4):
            await small.service.place_session(id=f"s{n}")
        assert len(small.session_ids()) == 1
        assert len(big.session_ids()) == 3

        with pytest.raises(PlacementTimeout, match=r"no node opened session 's4' within 2s"):
            await big.service.place_session(id="s4")
        assert where("s4", small, big) == []
        # Withdrawn: no node that gets room later finds it.
        assert await control_entries(redis) == []
        assert big.placement.statistics().counts["timeouts"] == 1


async def test_a_node_with_no_room_only_sends(sim: SimServer, redis: RedisServer) -> None:
    async with (
        running_node(sim, redis, "front", max_sessions=0) as front,
        running_node(sim, redis, "back", max_sessions=2) as back,
    ):
        first = await front.service.place_session(id="x1")
        second = await front.service.place_session(id="x2")
        assert (first.node, second.node) == ("back", "back")
        assert first.session is None  # it runs in another service
        assert front.session_ids() == set()
        assert back.session_ids() == {"x1", "x2"}
        assert front.placement.statistics().room == 0


async def control_entries(redis: RedisServer) -> list[dict[bytes, bytes]]:
    async with raw_client(redis) as client:
        entries = await client.xrange("{rtbus}:control")
    return [fields_of(entry) for entry in entries]


# -- a node that dies ------------------------------------------------------------------------


@pytest.mark.parametrize("claimed", [False, True], ids=["before-claiming", "after-claiming"])
async def test_a_request_pending_on_a_dead_node_is_taken_by_another(
    sim: SimServer, redis: RedisServer, claimed: bool
) -> None:
    async with (
        running_node(sim, redis, "front", max_sessions=0) as front,
        raw_client(redis) as ghost,
        trio.open_nursery() as nursery,
    ):
        answers: list[PlacedSession] = []

        async def place() -> None:
            answers.append(await front.service.place_session(id="orphan"))

        nursery.start_soon(place)
        # "ghost" reads the request as a node would, maybe claims the id, and dies: no lease,
        # no answer, no ack.
        with trio.fail_after(10):
            found = await ghost.xreadgroup("nodes", "ghost", {"{rtbus}:control": ">"}, block=5000)
        assert found is not None
        [(_, [entry])] = found.items()
        if claimed:
            request = entry.field_values[b"request"]
            await ghost.hset("{rtbus}:sessions", {"orphan": "ghost"})
            await ghost.hset("{rtbus}:sessions:requests", {"orphan": request})

        async with running_node(sim, redis, "back", max_sessions=2) as back:
            await eventually(lambda: bool(answers))
            assert answers[0].node == "back"
            assert back.session_ids() == {"orphan"}
            counts = back.placement.statistics().counts
            assert counts["reclaimed"] == 1
            assert counts["taken_over"] == (1 if claimed else 0)
            assert await registry(redis) == {"orphan": "back"}
            assert await control_entries(redis) == []


# -- one id, one session ---------------------------------------------------------------------


async def test_a_duplicate_id_is_refused_wherever_it_lands(
    sim: SimServer, redis: RedisServer
) -> None:
    async with running_node(sim, redis, "a") as a, running_node(sim, redis, "b") as b:
        first = await a.service.place_session(id="dup")
        for requester in (a, b, a, b):
            with pytest.raises(DuplicateChild, match="'dup'"):
                await requester.service.place_session(id="dup")
        assert where("dup", a, b) == [first.node]
        assert await registry(redis) == {"dup": first.node}


async def test_a_request_delivered_twice_opens_one_session(
    sim: SimServer, redis: RedisServer
) -> None:
    async with (
        running_node(sim, redis, "front", max_sessions=0),
        running_node(sim, redis, "back") as back,
        raw_client(redis) as client,
    ):
        fields = request_fields("twice", deadline_in=30)
        replies = []
        last = "0-0"
        for _ in range(2):
            await client.xadd("{rtbus}:control", fields)
            with trio.fail_after(10):
                found = await client.xread({REPLIES: last}, block=5000)
            assert found is not None
            [(_, [reply])] = found.items()
            id = reply.identifier
            last = id.decode() if isinstance(id, bytes) else id
            replies.append(fields_of(reply))
        assert [reply[b"outcome"] for reply in replies] == [b"opened", b"opened"]
        assert [reply[b"node"] for reply in replies] == [b"back", b"back"]
        assert back.session_ids() == {"twice"}
        assert back.placement.statistics().counts["opened"] == 1


async def test_a_stale_claim_of_its_own_is_taken_over(sim: SimServer, redis: RedisServer) -> None:
    async with (
        running_node(sim, redis, "front", max_sessions=0) as front,
        running_node(sim, redis, "back") as back,
        raw_client(redis) as client,
    ):
        # "back" claimed "stale" once and the session is gone (its release never happened).
        await client.hset("{rtbus}:sessions", {"stale": "back"})
        await client.hset("{rtbus}:sessions:requests", {"stale": "an-old-request"})
        placed = await front.service.place_session(id="stale")
        assert placed.node == "back"
        assert back.session_ids() == {"stale"}
        assert back.placement.statistics().counts["taken_over"] == 1


async def test_a_request_a_live_node_is_opening_is_left_to_it(
    sim: SimServer, redis: RedisServer
) -> None:
    async with (
        running_node(sim, redis, "front", max_sessions=0),
        running_node(sim, redis, "busy", max_sessions=0),
        running_node(sim, redis, "back") as back,
        raw_client(redis) as client,
    ):
        # "busy" (alive) claimed the id for this very request: it answers, not "back".
        await client.hset("{rtbus}:sessions", {"mine": "busy"})
        await client.hset("{rtbus}:sessions:requests", {"mine": "req-mine"})
        await client.xadd("{rtbus}:control", request_fields("mine", deadline_in=30))
        await eventually(lambda: control_entries_empty(redis))
        assert await client.exists([REPLIES]) == 0
        assert back.session_ids() == set()
        assert await registry(redis) == {"mine": "busy"}


async def test_a_request_past_its_deadline_is_not_opened(
    sim: SimServer, redis: RedisServer
) -> None:
    async with (
        running_node(sim, redis, "front", max_sessions=0),
        running_node(sim, redis, "back") as back,
        raw_client(redis) as client,
    ):
        await client.xadd("{rtbus}:control", request_fields("late", deadline_in=-1))
        reply = await next_reply(client)
        assert reply[b"outcome"] == b"expired"
        assert back.session_ids() == set()
        assert await registry(redis) == {}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({b"session_id": b"not an id"}, b"session_id: is not a valid session id"),
        ({b"deadline": b"soon"}, b"deadline: is not a number of milliseconds"),
        ({b"session": b"{not json"}, b"session: is not JSON"),
        ({b"session": b"[1]"}, b"session: is not a JSON object"),
    ],
)
async def test_a_malformed_request_is_answered_invalid_and_retired(
    sim: SimServer, redis: RedisServer, change: dict[bytes, bytes], problem: bytes
) -> None:
    async with (
        running_node(sim, redis, "front", max_sessions=0),
        running_node(sim, redis, "back") as back,
        raw_client(redis) as client,
    ):
        await client.xadd("{rtbus}:control", request_fields("bad", deadline_in=30) | change)
        reply = await next_reply(client)
        assert reply[b"outcome"] == b"invalid_request"
        assert problem in reply[b"message"]
        assert back.session_ids() == set()
        assert await control_entries(redis) == []
        assert back.placement.statistics().counts["malformed"] == 1


async def test_a_request_with_nobody_to_answer_is_retired(
    sim: SimServer, redis: RedisServer
) -> None:
    async with running_node(sim, redis, "back") as back, raw_client(redis) as client:
        await client.xadd("{rtbus}:control", {b"session_id": b"x"})
        await eventually(lambda: back.placement.statistics().counts["malformed"] == 1)
        await eventually(lambda: control_entries_empty(redis))
        assert back.session_ids() == set()


REPLIES = "{rtbus}:control:replies:front"


def request_fields(id: str, *, deadline_in: float) -> dict[bytes, bytes]:
    deadline = round((time.time() + deadline_in) * 1000)
    return {
        b"request": f"req-{id}".encode(),
        b"reply_to": b"front",
        b"session_id": id.encode(),
        b"deadline": str(deadline).encode(),
    }


async def next_reply(client: coredis.Redis[bytes]) -> dict[bytes, bytes]:
    with trio.fail_after(10):
        found = await client.xread({REPLIES: "0-0"}, block=5000)
    assert found is not None
    [(_, [reply])] = found.items()
    return fields_of(reply)


async def control_entries_empty(redis: RedisServer) -> bool:
    return await control_entries(redis) == []


def fields_of(entry: StreamEntry) -> dict[bytes, bytes]:
    return dict(cast(Mapping[bytes, bytes], entry.field_values))


def placement_of(service: Service) -> Placement | None:
    return service.placement


# -- Redis down ------------------------------------------------------------------------------


@COREDIS_LEAKS_ON_FAILED_CONNECT
async def test_with_redis_down_placing_fails_clearly_and_the_service_keeps_running(
    sim: SimServer, redis: RedisServer, collect_garbage: None
) -> None:
    async with running_node(sim, redis, "a") as a:
        await a.service.place_session(id="before")
        redis.stop()

        with pytest.raises(RedisUnavailableError) as caught:
            await a.service.place_session(id="during")
        assert str(caught.value).startswith("redis xadd: ")
        assert PASSWORD not in str(caught.value)
        await eventually(lambda: not a.service.readiness().ready)
        check = a.service.readiness().checks["placement"]
        assert check == f"redis at redis://127.0.0.1:{redis.port}/0 is unreachable"
        # The node goes on: its sessions run and it opens more locally.
        local = await a.service.open_session(id="local")
        assert a.session_ids() == {"before", "local"}
        assert local.state is SessionState.READY

        redis.start()
        await eventually(lambda: a.service.readiness().ready)
        placed = await a.service.place_session(id="after")
        assert placed.node == "a"
        assert await registry(redis) == {"before": "a", "after": "a"}


@COREDIS_LEAKS_ON_FAILED_CONNECT
async def test_after_redis_lost_its_data_placement_rebuilds_what_it_needs(
    sim: SimServer, redis: RedisServer, collect_garbage: None
) -> None:
    async with running_node(sim, redis, "a") as a, raw_client(redis) as client:
        await a.service.place_session(id="before")
        await client.flushall()
        # The control stream and its group are made again, the running session claimed again.
        placed = await a.service.place_session(id="after")
        assert placed.node == "a"
        await eventually(lambda: registry_is(redis, {"before": "a", "after": "a"}))
        await eventually(lambda: lease_exists(client, "a"))


async def lease_exists(client: coredis.Redis[bytes], node: str) -> bool:
    return await client.exists([f"{{rtbus}}:node:{node}"]) == 1


async def registry_is(redis: RedisServer, expected: dict[str, str]) -> bool:
    return await registry(redis) == expected


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"id": "not an id"}, ValueError, "a session id must be 1-128 letters"),
        ({"id": ""}, ValueError, "a session id must be"),
        ({"id": "x" * 129}, ValueError, "a session id must be"),
        ({"model": ""}, ValueError, "model must be a non-empty string"),
        ({"session": ["voice"]}, TypeError, "session must be a mapping"),
        ({"session": {"x": object()}}, ValueError, "session must be JSON-serialisable"),
    ],
)
async def test_a_bad_argument_is_refused_and_nothing_is_sent(
    sim: SimServer,
    redis: RedisServer,
    options: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    async with running_node(sim, redis, "a") as a:
        with pytest.raises(error, match=message):
            await a.service.place_session(**options)
        assert await control_entries(redis) == []
        assert a.placement.statistics().counts["requested"] == 0
        assert a.session_ids() == set()


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"node": "bad node"}, "node"),
        ({"node": ""}, "node"),
        ({"node": "a", "max_sessions": -1}, "max_sessions"),
        ({"node": "a", "max_sessions": True}, "max_sessions"),
        ({"node": "a", "poll_seconds": 0}, "poll_seconds"),
        ({"node": "a", "lease_seconds": math.nan}, "lease_seconds"),
        ({"node": "a", "reclaim_idle": 30.0, "request_timeout": 30.0}, "reclaim_idle"),
    ],
)
def test_a_bad_placement_config_names_the_setting(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        PlacementConfig(**options)
    assert caught.value.key == key


async def test_a_readiness_check_name_taken_is_refused_before_anything_starts(
    sim: SimServer, redis: RedisServer
) -> None:
    async with open_service(upstream(sim)) as service, open_link(redis_config(redis)) as link:
        service.add_readiness_check("placement", lambda: None)
        with pytest.raises(ValueError, match="'placement' is taken"):
            async with open_placement(service, link, PlacementConfig(node="a")):
                pass  # pragma: no cover
        assert service.placement is None


# -- refusals --------------------------------------------------------------------------------


async def test_a_session_that_cannot_start_is_refused_with_why_and_no_secret(
    sim: SimServer, redis: RedisServer
) -> None:
    wrong = "sk-wrong-key-for-placement-0c44"
    async with (
        running_node(sim, redis, "front", max_sessions=0) as front,
        running_node(sim, redis, "broken", key=wrong) as broken,
    ):
        with pytest.raises(PlacementRefused) as caught:
            await front.service.place_session(id="doomed")
        refused = caught.value
        assert (refused.outcome, refused.node) == (Outcome.START_FAILED, "broken")
        assert "could not open session 'doomed' (start_failed)" in str(refused)
        assert wrong not in str(refused)
        assert broken.session_ids() == set()
        assert await registry(redis) == {}  # the claim is given back
        assert broken.placement.statistics().counts["refused.start_failed"] == 1


async def test_a_second_process_with_a_node_id_in_use_takes_nothing(
    sim: SimServer, redis: RedisServer
) -> None:
    async with (
        running_node(sim, redis, "a") as first,
        open_service(upstream(sim)) as service,
        trio.open_nursery() as nursery,
    ):
        config = PlacementConfig(node="a", **FAST)
        second: Placement = await nursery.start(run_placement, service, redis_config(redis), config)
        assert service.placement is second
        problem = "node id 'a' is in use by another live process"
        await eventually(lambda: second.readiness_problem() == problem)
        assert service.readiness().checks["placement"] == problem
        assert second.statistics().room == 0
        for n in range(3):
            await first.service.place_session(id=f"s{n}")
        assert first.session_ids() == {"s0", "s1", "s2"}
        assert service.sessions == {}
        nursery.cancel_scope.cancel()


# -- around placement ------------------------------------------------------------------------


async def test_without_placement_a_session_is_placed_here(sim: SimServer) -> None:
    async with open_service(upstream(sim)) as service:
        placed = await service.place_session(id="here", model=MODEL)
        assert placed == PlacedSession("here", None)
        assert placed.session is service.sessions["here"]


async def test_a_node_that_stops_gives_its_claims_and_lease_back(
    sim: SimServer, redis: RedisServer
) -> None:
    async with running_node(sim, redis, "a") as a:
        await a.service.place_session(id="s1")
        assert await registry(redis) == {"s1": "a"}
        assert placement_of(a.service) is a.placement
    assert placement_of(a.service) is None
    assert await registry(redis) == {}
    async with raw_client(redis) as client:
        assert await client.exists(["{rtbus}:node:a"]) == 0


async def test_placement_not_running_refuses(sim: SimServer, redis: RedisServer) -> None:
    async with running_node(sim, redis, "a") as a:
        placement = a.placement
    with pytest.raises(trio.ClosedResourceError, match="placement is not running"):
        await placement.open_session(id="late")
    assert placement.readiness_problem() == "placement is not running"
