"""RedisConfig, the stream layout and the entry format: checked without a server."""

from __future__ import annotations

import math
from typing import Any

import attrs
import orjson
import pytest
from support.redis_load import AUDIO, TEXT, frame

from rtbus.bus import Bus, BusArgumentError, Envelope, OverflowPolicy, Undecoded
from rtbus.bus._filters import parse_types
from rtbus.protocol import ConfigError, ProtocolError, decode_server_event
from rtbus.redis import (
    DEFAULT_STREAMS,
    RedisBridge,
    RedisConfig,
    TrimStrategy,
    subscribe,
)
from rtbus.redis._layout import StreamLayout, decode_entry, encode_entry, entry_mapping
from rtbus.session import SessionReconnected

SECRET = "hunter2-very-secret"


def as_answered(fields: dict[bytes, bytes]) -> list[bytes]:
    """An entry's fields as Redis answers them: names and values alternating."""
    return [part for pair in fields.items() for part in pair]


def text_entry() -> dict[bytes, bytes]:
    envelope = Envelope("s", 1, TEXT, Undecoded(TEXT), 0.0, frame(TEXT, 1))
    return encode_entry(envelope, b"n", 1700000000.5)


def test_defaults_work_and_hide_nothing_but_the_password() -> None:
    config = RedisConfig(url="redis://worker@redis.internal:6380/2", password=SECRET)
    assert SECRET not in repr(config)
    assert "password='***'" in repr(config)
    assert config.location == "redis://redis.internal:6380/2"  # no user info
    assert config.streams == DEFAULT_STREAMS
    assert config.trim is TrimStrategy.MAXLEN
    assert config.overflow is OverflowPolicy.DROP_OLDEST
    options = config.client_options()
    assert (options["host"], options["port"], options["db"]) == ("redis.internal", 6380, 2)
    assert (options["username"], options["password"], options["ssl"]) == ("worker", SECRET, False)
    assert RedisConfig(url="rediss://h").client_options()["ssl"] is True


@pytest.mark.parametrize(
    ("changes", "key", "words"),
    [
        ({"url": "http://localhost"}, "url", "redis://"),
        ({"url": "redis://"}, "url", "with a host"),
        ({"url": "redis://h:99999"}, "url", "port"),
        ({"url": "redis://h/zero"}, "url", "database number"),
        ({"prefix": "rtbus"}, "prefix", "hash tag"),
        ({"prefix": "{}"}, "prefix", "hash tag"),
        ({"streams": {}}, "streams", "non-empty"),
        ({"streams": {"a b": "*"}}, "streams", "stream name"),
        ({"streams": {"audio": "response.[x"}}, "streams.audio", "no closing"),
        ({"streams": {"audio": 5}}, "streams.audio", "glob"),
        ({"trim": "fifo"}, "trim", "'maxlen' or 'minid'"),
        ({"maxlen": 0}, "maxlen", "at least 1"),
        ({"buffer_size": True}, "buffer_size", "an int"),
        ({"batch_size": 2.5}, "batch_size", "an int"),
        ({"linger_seconds": -0.001}, "linger_seconds", "0 or more"),
        ({"linger_seconds": math.inf}, "linger_seconds", "0 or more"),
        ({"linger_seconds": 1.5}, "linger_seconds", "at most 1"),
        ({"batch_size": 10_001}, "batch_size", "at most 10000"),
        ({"overflow": "disconnect"}, "overflow", "drop_oldest"),
        ({"overflow": "sometimes"}, "overflow", "must be one of"),
        ({"reclaim_idle_seconds": -1}, "reclaim_idle_seconds", "positive"),
        ({"retention_seconds": math.nan}, "retention_seconds", "positive"),
        ({"command_timeout": "5"}, "command_timeout", "positive"),
        ({"max_deliveries": 0}, "max_deliveries", "at least 1"),
        ({"dead_letter_stream": "dead:letter"}, "dead_letter_stream", "letters"),
        ({"password": ""}, "password", "must not be empty"),
    ],
)
def test_a_bad_value_names_its_field(changes: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RedisConfig(**changes)
    assert caught.value.key == key
    assert words in str(caught.value)


def test_a_password_in_the_url_is_refused_without_repeating_it() -> None:
    with pytest.raises(ConfigError) as caught:
        RedisConfig(url=f"redis://:{SECRET}@localhost:6379/0")
    assert caught.value.key == "url"
    assert "set `password`" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value.args)


def test_a_bad_url_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        RedisConfig(url=f"redis://h:{SECRET}")
    assert SECRET not in str(caught.value)


def test_the_layout_routes_first_match_wins_under_one_hash_tag() -> None:
    config = RedisConfig(
        prefix="{voice}",
        streams={"transcripts": ["*.output_audio_transcript.*"], "audio": "*audio*", "rest": "*"},
        dead_letter_stream="dlq",
    )
    layout = StreamLayout(config)
    assert layout.key_for("response.output_audio_transcript.delta") == b"{voice}:events:transcripts"
    assert layout.key_for(AUDIO) == b"{voice}:events:audio"
    assert layout.key_for("response.done") == b"{voice}:events:rest"
    assert layout.dead_letter_key == b"{voice}:dlq"
    assert layout.failures_key("g") == b"{voice}:failures:g"
    assert layout.types == ("*.output_audio_transcript.*", "*audio*", "*")


def test_nothing_is_bridged_that_no_stream_takes() -> None:
    layout = StreamLayout(RedisConfig(streams={"audio": AUDIO}))
    assert layout.key_for(TEXT) is None
    assert layout.types == (AUDIO,)


def test_a_consumer_reads_the_streams_its_types_can_be_in() -> None:
    layout = StreamLayout(RedisConfig())
    audio, events = layout.keys["audio"], layout.keys["events"]
    assert layout.keys_for(parse_types("*"), None) == (audio, events)
    assert layout.keys_for(parse_types(["response.done", "error"]), None) == (events,)
    assert layout.keys_for(parse_types(AUDIO), None) == (audio,)
    assert layout.keys_for(parse_types("response.*"), None) == (audio, events)
    assert layout.keys_for(parse_types("*"), ["events"]) == (events,)


def test_an_entry_carries_the_upstream_bytes_untouched() -> None:
    raw = frame(AUDIO, 7)
    envelope = Envelope("sess-1", 42, AUDIO, decode_server_event(raw), 1.5, raw)
    fields = encode_entry(envelope, b"node-a", 1700000000.25)
    assert fields[b"event"] is raw  # the same object: never decoded and encoded again
    entry = decode_entry(as_answered(fields))
    assert (entry.session_id, entry.seq, entry.type) == ("sess-1", 42, AUDIO)
    assert (entry.node, entry.published_at, entry.raw) == ("node-a", 1700000000.25, raw)


def test_a_lifecycle_event_without_raw_is_encoded_with_its_type() -> None:
    event = SessionReconnected(reason="close_1006", attempt=2, upstream_session_id="sess_up")
    envelope = Envelope("s", 3, event.type, event, 0.0)
    decoded = orjson.loads(encode_entry(envelope, b"n", 0.0)[b"event"])
    assert decoded == {"type": "rtbus.session.reconnected", **attrs.asdict(event)}
    assert decoded["upstream_session_id"] == "sess_up"


def test_an_event_that_is_not_one_cannot_be_written() -> None:
    with pytest.raises(ProtocolError, match="not an event"):
        encode_entry(Envelope("s", 1, "x.y", object(), 0.0), b"n", 0.0)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="not an event"):
        encode_entry(Envelope("s", 1, "x.y", {"a": 1}, 0.0), b"n", 0.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("drop", "change", "words"),
    [
        (b"session", {}, "no 'session' field"),
        (None, {b"seq": b"three"}, "malformed field"),
        (None, {b"type": b"\xff"}, "malformed field"),
    ],
)
def test_a_malformed_entry_says_what_is_wrong(
    drop: bytes | None, change: dict[bytes, bytes], words: str
) -> None:
    fields = text_entry()
    fields.pop(drop or b"", None)
    fields.update(change)
    with pytest.raises(ProtocolError, match=words):
        decode_entry(as_answered(fields))


def test_an_entry_another_writer_made_decodes_by_field_name() -> None:
    fields = text_entry()
    expected = decode_entry(as_answered(fields))
    reordered = as_answered(dict(reversed(fields.items())))
    extra = [b"trace", b"abc", *as_answered(fields), b"zz", b"1"]
    repeated = [*as_answered(fields), b"seq", b"9"]  # XADD keeps both; the last one counts
    assert decode_entry(reordered) == expected
    assert decode_entry(extra) == expected
    assert decode_entry(repeated) == expected._replace(seq=9)
    assert decode_entry(tuple(as_answered(fields))) == expected  # any sequence
    assert entry_mapping(reordered) == fields


@pytest.mark.parametrize("field", [b"session", b"seq", b"type", b"node", b"time", b"event"])
def test_an_entry_missing_any_field_names_it(field: bytes) -> None:
    fields = text_entry()
    del fields[field]
    with pytest.raises(ProtocolError, match=f"no '{field.decode()}' field"):
        decode_entry(as_answered(fields))


def test_bad_subscribe_arguments_name_the_argument() -> None:
    config = RedisConfig()
    for kwargs, argument in [
        ({"group": ""}, "group"),
        ({"group": "a b"}, "group"),
        ({"group": "g", "consumer": 5}, "consumer"),
        ({"group": "g", "start": "1-0"}, "start"),
        ({"group": "g", "streams": ["video"]}, "streams"),
        ({"group": "g", "types": "response.[x"}, "types"),
        ({"group": "g", "sessions": []}, "sessions"),
    ]:
        with pytest.raises(BusArgumentError) as caught:
            subscribe(config, **kwargs)  # type: ignore[arg-type]
        assert caught.value.argument == argument


async def test_a_bridge_needs_a_node_name_and_subscribes_to_what_it_bridges() -> None:
    bus = Bus()
    with pytest.raises(ValueError, match="node"):
        RedisBridge(bus, RedisConfig(), node="")
    assert bus.statistics().subscriptions == 0  # the bad call subscribed nothing
    bridge = RedisBridge(bus, RedisConfig(streams={"audio": AUDIO}), node="n")
    assert bus.has_subscriber("s", AUDIO)
    assert not bus.has_subscriber("s", TEXT)
    assert bridge.readiness_problem() == "the bridge is not running"
    await bridge.aclose()
    assert not bus.has_subscriber("s", AUDIO)
    assert bridge.readiness_problem() == "the bridge is closed"
