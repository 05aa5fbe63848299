"""Webhook signatures, held to the official ``openai`` package in both directions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.webhooks import RealtimeCallIncomingWebhookEvent

from rtbus.protocol import (
    ActOnWebhook,
    ConfigError,
    DeliveryLog,
    MalformedWebhookError,
    ProtocolError,
    RealtimeCallIncoming,
    SipHeader,
    UnknownWebhookEvent,
    WebhookInbox,
    WebhookRedelivery,
    WebhookRefusal,
    WebhookSecret,
    WebhookSignatureError,
    WebhookTimestampError,
    WebhookVerifier,
    decode_webhook_event,
    sign_webhook,
)

SECRET = WebhookSecret(b"rtbus-test-webhook-key-32-bytes!")
OTHER = WebhookSecret(b"some-other-endpoint-key-32-bytes")
BODY = (
    b'{"id":"evt_1","object":"event","created_at":1760000000,"type":"realtime.call.incoming",'
    b'"data":{"call_id":"rtc_1","sip_headers":[{"name":"From","value":"<sip:+15550001@x>"}]}}'
)


def sdk() -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", webhook_secret=SECRET.reveal())


def reference_signature(secret_text: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    """The signature as the SDK computes it, written out from its source independently."""
    key = base64.b64decode(secret_text.removeprefix("whsec_"))
    signed = f"{webhook_id}.{timestamp}.{body.decode()}".encode()
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def test_the_sdk_accepts_what_rtbus_signs() -> None:
    now = int(time.time())
    headers = sign_webhook(SECRET, "wh_1", now, BODY)
    sdk().webhooks.verify_signature(BODY, headers)
    event = sdk().webhooks.unwrap(BODY, headers)
    assert isinstance(event, RealtimeCallIncomingWebhookEvent)
    assert event.data.call_id == "rtc_1"


def test_rtbus_accepts_what_the_sdk_accepts() -> None:
    now = int(time.time())
    signature = reference_signature(SECRET.reveal(), "wh_2", str(now), BODY)
    headers = {
        "webhook-id": "wh_2",
        "webhook-timestamp": str(now),
        "webhook-signature": f"v1,{signature}",
    }
    sdk().webhooks.verify_signature(BODY, headers)  # the reference is the SDK's scheme
    delivery = WebhookVerifier(SECRET).verify(headers, BODY, now=now)
    assert (delivery.webhook_id, delivery.timestamp, delivery.body) == ("wh_2", now, BODY)


@settings(max_examples=50, deadline=None)
@given(
    key=st.binary(min_size=1, max_size=64),
    webhook_id=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1),
    body=st.text().map(str.encode),
)
def test_both_ways_for_any_key_id_and_body(key: bytes, webhook_id: str, body: bytes) -> None:
    secret = WebhookSecret(key)
    now = int(time.time())
    ours = sign_webhook(secret, webhook_id, now, body)
    client = openai.OpenAI(api_key="sk-test", webhook_secret=secret.reveal())
    client.webhooks.verify_signature(body, ours)
    theirs = dict(ours, **{"webhook-signature": "v1," + reference_signature(
        secret.reveal(), webhook_id, str(now), body)})  # fmt: skip
    assert WebhookVerifier(secret).verify(theirs, body, now=now).webhook_id == webhook_id


def test_a_tampered_body_is_refused_by_both() -> None:
    now = int(time.time())
    headers = sign_webhook(SECRET, "wh_3", now, BODY)
    tampered = BODY.replace(b"rtc_1", b"rtc_2")
    with pytest.raises(WebhookSignatureError) as caught:
        WebhookVerifier(SECRET).verify(headers, tampered, now=now)
    assert caught.value.webhook_id == "wh_3"
    with pytest.raises(openai.InvalidWebhookSignatureError):
        sdk().webhooks.verify_signature(tampered, headers)


@pytest.mark.parametrize(("offset", "side"), [(-301, "old"), (301, "future")])
def test_timestamps_outside_the_tolerance_are_refused_by_both(offset: int, side: str) -> None:
    now = int(time.time())
    headers = sign_webhook(SECRET, "wh_4", now + offset, BODY)
    with pytest.raises(WebhookTimestampError) as caught:
        WebhookVerifier(SECRET).verify(headers, BODY, now=now)
    assert caught.value.skew == -offset
    assert side in str(caught.value)
    # The SDK reads its own clock, which may have ticked since ``now``: give it a clear case.
    clear = sign_webhook(SECRET, "wh_4", now + 2 * offset, BODY)
    with pytest.raises(openai.InvalidWebhookSignatureError):
        sdk().webhooks.verify_signature(BODY, clear)


@pytest.mark.parametrize("offset", [-300, 300, 0])
def test_timestamps_at_the_edge_of_the_tolerance_pass(offset: int) -> None:
    headers = sign_webhook(SECRET, "wh_5", 1_760_000_000 + offset, BODY)
    WebhookVerifier(SECRET).verify(headers, BODY, now=1_760_000_000)


def test_a_rotating_sender_signs_twice_and_one_signature_is_enough() -> None:
    now = int(time.time())
    headers = sign_webhook([OTHER, SECRET], "wh_6", now, BODY)
    assert len(headers["webhook-signature"].split()) == 2
    WebhookVerifier(SECRET).verify(headers, BODY, now=now)
    sdk().webhooks.verify_signature(BODY, headers)
    with pytest.raises(WebhookSignatureError):
        WebhookVerifier(WebhookSecret(b"neither")).verify(headers, BODY, now=now)


def test_a_rotating_receiver_accepts_either_of_its_secrets() -> None:
    headers = sign_webhook(OTHER, "wh_7", 100, BODY)
    WebhookVerifier((SECRET, OTHER)).verify(headers, BODY, now=100)


GOOD = sign_webhook(SECRET, "wh_8", 100, BODY)


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({k: v for k, v in GOOD.items() if k != "webhook-id"}, "webhook-id"),
        ({k: v for k, v in GOOD.items() if k != "webhook-signature"}, "webhook-signature"),
        ({**GOOD, "webhook-timestamp": ""}, "webhook-timestamp"),
        ({**GOOD, "webhook-timestamp": "1e9"}, "Unix seconds"),
        ({**GOOD, "webhook-timestamp": "-5"}, "Unix seconds"),
        ({**GOOD, "webhook-signature": "v2,abc"}, "no readable v1"),
        ({**GOOD, "webhook-signature": "v1,not base64!"}, "no readable v1"),
        ({**GOOD, "webhook-signature": " ".join(["v1,AAAA"] * 17)}, "at most 16"),
    ],
)
def test_malformed_headers_say_so(headers: dict[str, str], problem: str) -> None:
    with pytest.raises(MalformedWebhookError) as caught:
        WebhookVerifier(SECRET).verify(headers, BODY, now=100)
    assert problem in str(caught.value)


def test_header_names_are_case_insensitive_and_bytes_are_fine() -> None:
    pairs = [(k.title().encode(), v.encode()) for k, v in GOOD.items()]
    assert WebhookVerifier(SECRET).verify(pairs, BODY, now=100).webhook_id == "wh_8"


def test_no_secret_in_any_repr_or_message() -> None:
    text = SECRET.reveal()
    verifier = WebhookVerifier(SECRET)
    messages = []
    for headers, body in [(GOOD, b"x"), ({**GOOD, "webhook-signature": "v1,AAAA"}, BODY)]:
        with pytest.raises(WebhookSignatureError) as caught:
            verifier.verify(headers, body, now=100)
        messages.append(str(caught.value) + repr(caught.value))
    with pytest.raises(ConfigError) as config_error:
        WebhookSecret.parse("whsec_%%%secret%%%")
    messages += [repr(SECRET), repr(verifier), str(config_error.value)]
    for message in messages:
        assert text not in message
        assert "rtbus-test-webhook-key" not in message
        assert "secret%%%" not in message


def test_secrets_parse_as_the_sdk_reads_them() -> None:
    assert WebhookSecret.parse(SECRET.reveal()) == SECRET
    assert WebhookSecret.parse("plain-text").key == b"plain-text"
    assert WebhookSecret.from_env({"OPENAI_WEBHOOK_SECRET": SECRET.reveal()}) == SECRET
    assert WebhookSecret.from_env({}) is None
    with pytest.raises(ConfigError, match="OPENAI_WEBHOOK_SECRET"):
        WebhookVerifier.from_env({})


def test_each_delivery_is_claimed_once_and_redeliveries_are_recognized() -> None:
    log = WebhookVerifier(SECRET).delivery_log(ttl=600)
    assert log.claim("wh_1", now=0)
    assert not log.claim("wh_1", now=599)
    assert log.claim("wh_1", now=600)  # the claim lapsed after its ttl
    log.release("wh_1")
    assert log.claim("wh_1", now=601)  # a failed action lets the next redelivery act
    assert log.statistics().duplicates == 1


def test_the_delivery_log_is_bounded() -> None:
    log = DeliveryLog(ttl=1000, max_ids=2)
    for webhook_id in ("a", "b", "c"):
        assert log.claim(webhook_id, now=0)
    assert log.claim("a", now=1)  # forgotten to make room: counted
    assert log.statistics().evicted == 2
    assert log.statistics().ids == 2


def test_the_delivery_log_covers_the_replay_window() -> None:
    with pytest.raises(ConfigError):
        WebhookVerifier(SECRET, tolerance=300).delivery_log(ttl=599)
    assert WebhookVerifier(SECRET).delivery_log().ttl == 72 * 3600


def test_call_incoming_decodes_and_encodes_as_the_sdk_types_it() -> None:
    event = decode_webhook_event(BODY)
    assert isinstance(event, RealtimeCallIncoming)
    assert event.sip_header("from") == "<sip:+15550001@x>"
    assert event.sip_header("To") is None
    again = RealtimeCallIncoming(
        id="evt_2",
        created_at=1,
        call_id="rtc_2",
        sip_headers=(SipHeader("To", "<sip:+1555@x>"), SipHeader("From", "<sip:+1666@y>")),
        sip_media_security="srtp",
    )
    model = RealtimeCallIncomingWebhookEvent.model_validate(again.to_dict(), strict=True)
    assert model.data.sip_headers[0].name == "To"
    assert decode_webhook_event(model.model_dump_json()) == again


def test_other_event_types_are_kept_not_refused() -> None:
    body = b'{"id":"evt_3","created_at":5,"type":"batch.completed","data":{"id":"b"}}'
    assert decode_webhook_event(body) == UnknownWebhookEvent(
        "evt_3", 5, "batch.completed", {"id": "b"}
    )


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b"[]", None),
        (b'{"type":"x","created_at":1}', "id"),
        (b'{"id":"e","type":"realtime.call.incoming","created_at":1,"data":{}}',
         "data.sip_headers"),
        (b'{"id":"e","type":"realtime.call.incoming","created_at":1,'
         b'"data":{"call_id":"c","sip_headers":[{"name":"To"}]}}', "data.sip_headers.0.value"),
    ],
)  # fmt: skip
def test_misshapen_bodies_name_the_field(body: bytes, path: str | None) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_webhook_event(body)
    assert caught.value.path == path


def test_the_inbox_acts_once_acknowledges_redeliveries_and_refuses_with_a_status() -> None:
    inbox = WebhookInbox(WebhookVerifier(SECRET))
    first = inbox.receive(sign_webhook(SECRET, "wh_9", 100, BODY), BODY, now=100)
    assert isinstance(first, ActOnWebhook)
    assert isinstance(first.event, RealtimeCallIncoming)
    again = inbox.receive(sign_webhook(SECRET, "wh_9", 160, BODY), BODY, now=160)
    assert again == WebhookRedelivery("wh_9")
    inbox.release("wh_9")  # acting failed: the next redelivery acts
    assert isinstance(inbox.receive(sign_webhook(SECRET, "wh_9", 200, BODY), BODY, now=200),
                      ActOnWebhook)  # fmt: skip
    verdicts = [
        inbox.receive(sign_webhook(OTHER, "wh_a", 100, BODY), BODY, now=100),
        inbox.receive(sign_webhook(SECRET, "wh_b", 100, BODY), BODY, now=1000),
        inbox.receive({"webhook-id": "wh_c"}, BODY, now=100),
        inbox.receive(sign_webhook(SECRET, "wh_d", 100, b"not json"), b"not json", now=100),
    ]
    assert [v.status for v in verdicts] == [400, 400, 400, 400]
    assert all(isinstance(v, WebhookRefusal) for v in verdicts)
    # Refused deliveries claim nothing: a good delivery with the same id is acted on.
    good = inbox.receive(sign_webhook(SECRET, "wh_a", 100, BODY), BODY, now=100)
    assert isinstance(good, ActOnWebhook)


@given(st.lists(st.tuples(st.sampled_from("abcde"), st.floats(0, 400)), max_size=60))
def test_a_delivery_is_claimed_once_per_ttl(steps: list[tuple[str, float]]) -> None:
    log = DeliveryLog(ttl=600, max_ids=1000)
    claimed_at: dict[str, float] = {}
    now = 0.0
    for webhook_id, gap in steps:
        now += gap
        expected = webhook_id not in claimed_at or now >= claimed_at[webhook_id] + 600
        assert log.claim(webhook_id, now) is expected
        if expected:
            claimed_at[webhook_id] = now
