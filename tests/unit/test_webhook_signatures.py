"""The Stripe webhook signature matrix, with real HMAC-SHA256 signatures and the real ``stripe`` verifier."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import stripe

from usercredits.adapters.stripe.webhooks import WEBHOOK_TOLERANCE_SECONDS, sign_payload, verify_webhook
from usercredits.errors import InvalidSignatureError

SECRET = "whsec_test_matrix_0123456789abcdef"
EVENT: dict[str, Any] = {
    "id": "evt_1Signature",
    "object": "event",
    "api_version": "2026-01-01",
    "created": 1_770_000_000,
    "livemode": False,
    "pending_webhooks": 1,
    "type": "payment_intent.succeeded",
    "request": {"id": None, "idempotency_key": "order-01ORDER-attempt-1"},
    "data": {
        "object": {
            "id": "pi_123",
            "object": "payment_intent",
            "amount": 500,
            "amount_received": 500,
            "currency": "jpy",
            "status": "succeeded",
            "metadata": {"orderId": "01ORDER", "userId": "alice"},
            "last_payment_error": None,
            "next_action": None,
            "charges": {"object": "list", "data": [{"id": "ch_1", "object": "charge", "amount": 500}]},
        }
    },
}
PAYLOAD = json.dumps(EVENT, separators=(",", ":")).encode()


def test_valid_signature_gives_the_event_as_a_plain_dict() -> None:
    event = verify_webhook(PAYLOAD, sign_payload(PAYLOAD, SECRET), SECRET)

    assert event == EVENT
    assert type(event) is dict
    assert type(event["data"]["object"]) is dict
    assert type(event["data"]["object"]["charges"]["data"][0]) is dict


def test_payload_is_verified_byte_for_byte_not_reserialised() -> None:
    # Whitespace and key order Stripe chose are part of what is signed.
    pretty = json.dumps(EVENT, indent=2, sort_keys=True).encode()

    assert verify_webhook(pretty, sign_payload(pretty, SECRET), SECRET) == EVENT


def test_signature_within_the_tolerance_is_accepted() -> None:
    recent = int(time.time()) - WEBHOOK_TOLERANCE_SECONDS + 30

    assert verify_webhook(PAYLOAD, sign_payload(PAYLOAD, SECRET, recent), SECRET)["id"] == "evt_1Signature"


def test_one_matching_signature_among_several_is_enough() -> None:
    # During a secret roll Stripe signs with the old and the new secret.
    header = sign_payload(PAYLOAD, SECRET)
    ts, good = header.split(",")
    stale = sign_payload(PAYLOAD, "whsec_old", int(ts.removeprefix("t="))).split(",")[1]

    assert verify_webhook(PAYLOAD, f"{ts},{stale},{good}", SECRET)["type"] == "payment_intent.succeeded"


def test_sign_payload_matches_stripe_own_header_builder() -> None:
    ts = 1_770_000_000
    expected = stripe.WebhookSignature.generate_signature_header(PAYLOAD.decode(), SECRET, timestamp=ts)

    assert sign_payload(PAYLOAD, SECRET, ts) == expected


def _tampered() -> tuple[bytes, str | None]:
    header = sign_payload(PAYLOAD, SECRET)
    return PAYLOAD.replace(b'"amount":500', b'"amount":5'), header


def _resigned(body: bytes) -> tuple[bytes, str | None]:
    return body, sign_payload(body, SECRET)


SIGNATURE, MISSING, NOT_AN_EVENT = "signature verification failed", "missing Stripe-Signature", "not a Stripe event"
FAILURES: dict[str, tuple[bytes, str | None, str, str]] = {
    "wrong secret": (PAYLOAD, sign_payload(PAYLOAD, "whsec_someone_else"), SECRET, SIGNATURE),
    "tampered body": (*_tampered(), SECRET, SIGNATURE),
    "extra whitespace after signing": (PAYLOAD + b" ", sign_payload(PAYLOAD, SECRET), SECRET, SIGNATURE),
    "stale timestamp": (
        PAYLOAD,
        sign_payload(PAYLOAD, SECRET, int(time.time()) - WEBHOOK_TOLERANCE_SECONDS - 60),
        SECRET,
        SIGNATURE,
    ),
    "timestamp changed after signing": (
        PAYLOAD,
        "t=1," + sign_payload(PAYLOAD, SECRET).split(",")[1],
        SECRET,
        SIGNATURE,
    ),
    "missing header": (PAYLOAD, None, SECRET, MISSING),
    "empty header": (PAYLOAD, "", SECRET, MISSING),
    "garbage header": (PAYLOAD, "garbage", SECRET, SIGNATURE),
    "header without timestamp": (PAYLOAD, "v1=" + "0" * 64, SECRET, SIGNATURE),
    "non-numeric timestamp": (PAYLOAD, "t=abc,v1=" + "0" * 64, SECRET, SIGNATURE),
    "only the v0 scheme": (PAYLOAD, sign_payload(PAYLOAD, SECRET).replace("v1=", "v0="), SECRET, SIGNATURE),
    "empty secret": (PAYLOAD, sign_payload(PAYLOAD, ""), "", SIGNATURE),
    "not JSON": (*_resigned(b"this is not json"), SECRET, NOT_AN_EVENT),
    "JSON but not an object": (*_resigned(b"[1, 2, 3]"), SECRET, NOT_AN_EVENT),
    "JSON null": (*_resigned(b"null"), SECRET, NOT_AN_EVENT),
    "object without id or type": (*_resigned(b'{"object": "event"}'), SECRET, NOT_AN_EVENT),
    "not UTF-8": (*_resigned(b'{"id": "evt_\xff"}'), SECRET, NOT_AN_EVENT),
    "thin event notification": (
        *_resigned(b'{"id": "evt_1", "object": "v2.core.event", "type": "x"}'),
        SECRET,
        NOT_AN_EVENT,
    ),
}


@pytest.mark.parametrize(("payload", "header", "secret", "reason"), list(FAILURES.values()), ids=list(FAILURES))
def test_every_verification_failure_is_an_invalid_signature(
    payload: bytes, header: str | None, secret: str, reason: str
) -> None:
    with pytest.raises(InvalidSignatureError) as caught:
        verify_webhook(payload, header, secret)

    message = caught.value.message
    assert reason in message
    assert SECRET not in message
    assert "pi_123" not in message  # nothing of the payload is repeated
    assert header is None or not header or header not in message


def test_stale_timestamp_is_refused_for_its_age() -> None:
    stale = int(time.time()) - WEBHOOK_TOLERANCE_SECONDS - 1

    with pytest.raises(InvalidSignatureError) as caught:
        verify_webhook(PAYLOAD, sign_payload(PAYLOAD, SECRET, stale), SECRET)

    assert isinstance(caught.value.__cause__, stripe.SignatureVerificationError)
    assert "tolerance" in str(caught.value.__cause__)
