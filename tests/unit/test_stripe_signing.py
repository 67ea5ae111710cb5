"""Stripe's signature scheme (app/signing.py) against Stripe's own library, both ways: what the
service's signer writes `stripe.Webhook.construct_event` accepts, and what Stripe's helper
writes the service verifies."""

import json
import time

import pytest
import stripe
from hypothesis import given, settings
from hypothesis import strategies as st

from app import signing

SECRET = "whsec_" + "Tz7mKq2VbX9cR4nL8wP1yJ6hF3dS5aGe"
OTHER = "whsec_" + "Nw3QxL7pZr2Ub9Ke5Hs1Vc8Ym4Ta6Dj0"
BODY = json.dumps({"id": "evt_1", "object": "event", "type": "ping", "data": {}}).encode()


def test_our_header_is_what_stripes_library_accepts_for_each_secret():
    now = int(time.time())
    header = signing.stripe_signature_header([SECRET, OTHER], now, BODY)

    assert header.startswith(f"t={now},v1=") and header.count("v1=") == 2
    for secret in (SECRET, OTHER):
        assert stripe.Webhook.construct_event(BODY, header, secret)["id"] == "evt_1"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(BODY, header, "whsec_someone_else")


def test_stripes_helper_header_is_verified_by_the_service():
    now = int(time.time())
    header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), SECRET, now)

    assert signing.verify_stripe([OTHER, SECRET], header, BODY) == now
    with pytest.raises(signing.SignatureError) as refused:
        signing.verify_stripe([OTHER], header, BODY)
    assert refused.value.code == "invalid_signature"


@settings(max_examples=50, deadline=None)
@given(body=st.binary(max_size=512), secret=st.text(min_size=1, max_size=64))
def test_any_body_and_secret_round_trip_and_every_changed_byte_is_refused(body, secret):
    now = 1_790_000_000
    header = signing.stripe_signature_header([secret], now, body)

    assert signing.verify_stripe([secret], header, body, now=now) == now
    if body:
        changed = bytes([body[0] ^ 1]) + body[1:]
        with pytest.raises(signing.SignatureError):
            signing.verify_stripe([secret], header, changed, now=now)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "t=1790000000",
        "v1=" + "ab" * 32,
        "t=abc,v1=" + "ab" * 32,
        "t=1,t=2,v1=" + "ab" * 32,
        "t=1790000000,v0=" + "ab" * 32,
        "t=1790000000,v1=short",
    ],
)
def test_a_header_without_one_timestamp_and_a_v1_is_an_invalid_signature(header):
    with pytest.raises(signing.SignatureError) as refused:
        signing.verify_stripe([SECRET], header, BODY, now=1_790_000_000)
    assert refused.value.code == "invalid_signature"


def test_the_timestamp_is_checked_after_the_signature_both_ways():
    now = 1_790_000_000
    for signed_at in (now - 301, now + 301):
        header = signing.stripe_signature_header([SECRET], signed_at, BODY)
        with pytest.raises(signing.SignatureError) as stale:
            signing.verify_stripe([SECRET], header, BODY, now=now, tolerance=300)
        assert stale.value.code == "stale_timestamp"
        with pytest.raises(signing.SignatureError) as wrong:
            signing.verify_stripe([OTHER], header, BODY, now=now, tolerance=300)
        assert wrong.value.code == "invalid_signature"
    inside = signing.stripe_signature_header([SECRET], now - 300, BODY)
    assert signing.verify_stripe([SECRET], inside, BODY, now=now, tolerance=300) == now - 300
