"""The webhook signature schemes, written once: used by the server, the signing script and tests.

The sender signs the exact bytes `{event_id}.{timestamp}.{raw body}` with HMAC-SHA256. Two
header styles carry the result:

* ours: `X-Event-Id`, `X-Webhook-Timestamp`, `X-Webhook-Signature: sha256=<hex>`;
* Standard Webhooks': `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`.

Several signatures may travel in one header (separated by commas or spaces) and the server may
hold several secrets, so a secret can be rotated without downtime: one match is enough. A secret
written `whsec_<base64>` is the key it decodes to; any other secret is its UTF-8 bytes.

Stripe's own scheme (`Stripe-Signature`, for POST /webhooks/stripe) is at the end.
"""

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_TOLERANCE_SECONDS = 300
STANDARD_SECRET_PREFIX = "whsec_"

# (event id, timestamp, signature) header names of each style.
OUR_HEADERS = ("X-Event-Id", "X-Webhook-Timestamp", "X-Webhook-Signature")
STANDARD_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")

_EVENT_ID = re.compile(r"^[\x20-\x7e]{1,128}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_OUR_SIGNATURE = re.compile(r"^sha256=([0-9a-fA-F]{64})$")
_STANDARD_SIGNATURE = re.compile(r"^v1,([A-Za-z0-9+/]{43}=)$")


# Why a delivery failed verification: `code` is the problem code the API answers with.
class SignatureError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


# The three signing headers of one delivery, whichever style it came in (None when absent).
@dataclass(frozen=True)
class SignedHeaders:
    event_id: str | None
    timestamp: str | None
    signature: str | None


def secret_key(secret: str) -> bytes:
    """The HMAC key a configured secret stands for; ValueError when it cannot be one."""
    if not secret.startswith(STANDARD_SECRET_PREFIX):
        if not secret:
            raise ValueError("a webhook secret may not be empty")
        return secret.encode("utf-8")
    encoded = secret[len(STANDARD_SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as error:
        raise ValueError(f"a {STANDARD_SECRET_PREFIX} secret must be base64") from error
    if not key:
        raise ValueError(f"a {STANDARD_SECRET_PREFIX} secret may not be empty")
    return key


def parse_secrets(value: str | None) -> list[str]:
    """`WEBHOOK_SECRET` may hold several secrets separated by commas (rotation)."""
    return [secret.strip() for secret in (value or "").split(",") if secret.strip()]


def _digest(secret: str, event_id: str, timestamp: int | str, body: bytes) -> bytes:
    message = f"{event_id}.{timestamp}.".encode() + body
    return hmac.new(secret_key(secret), message, hashlib.sha256).digest()


def sign(secret: str, event_id: str, timestamp: int | str, body: bytes) -> str:
    """Our `X-Webhook-Signature` value: `sha256=<hex HMAC-SHA256>`."""
    return "sha256=" + _digest(secret, event_id, timestamp, body).hex()


def sign_standard(secret: str, event_id: str, timestamp: int | str, body: bytes) -> str:
    """The Standard Webhooks `webhook-signature` value: `v1,<base64 HMAC-SHA256>`."""
    return "v1," + base64.b64encode(_digest(secret, event_id, timestamp, body)).decode("ascii")


def signed_headers(
    secrets: Sequence[str], event_id: str, timestamp: int, body: bytes, *, standard: bool = False
) -> dict[str, str]:
    """The three headers a sender attaches, with one signature per secret."""
    id_name, timestamp_name, signature_name = STANDARD_HEADERS if standard else OUR_HEADERS
    signer = sign_standard if standard else sign
    signatures = [signer(secret, event_id, timestamp, body) for secret in secrets]
    return {
        id_name: event_id,
        timestamp_name: str(timestamp),
        signature_name: (" " if standard else ",").join(signatures),
    }


def read_headers(headers: Mapping[str, str]) -> SignedHeaders:
    """Our header style when any of our headers is present, else Standard Webhooks'.

    `headers` must look names up case-insensitively (Starlette's and httpx's headers do).
    """
    names = OUR_HEADERS if any(name in headers for name in OUR_HEADERS) else STANDARD_HEADERS
    return SignedHeaders(*(headers.get(name) for name in names))


def _candidates(header: str) -> list[bytes]:
    """The well-formed digests in a signature header; other entries are ignored."""
    digests = []
    for token in header.split():
        if match := _STANDARD_SIGNATURE.match(token):
            digests.append(base64.b64decode(match.group(1)))
            continue
        for part in token.split(","):
            if match := _OUR_SIGNATURE.match(part):
                digests.append(bytes.fromhex(match.group(1)))
    return digests


def _check_format(headers: SignedHeaders) -> tuple[str, str, list[bytes]]:
    if not headers.signature:
        raise SignatureError("invalid_signature", "The request carries no signature header.")
    if headers.event_id is None or not _EVENT_ID.match(headers.event_id):
        raise SignatureError(
            "invalid_signature", "The event id header must be 1-128 printable ASCII characters."
        )
    if headers.timestamp is None or not _TIMESTAMP.match(headers.timestamp):
        raise SignatureError(
            "invalid_signature", "The timestamp header must be Unix seconds (digits only)."
        )
    candidates = _candidates(headers.signature)
    if not candidates:
        raise SignatureError(
            "invalid_signature", "No signature is in a known form (sha256=<hex> or v1,<base64>)."
        )
    return headers.event_id, headers.timestamp, candidates


def verify(
    secrets: Sequence[str],
    headers: SignedHeaders,
    body: bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check a delivery's signature, then its timestamp; return the timestamp.

    Raises SignatureError with code `invalid_signature` (headers missing or malformed, or no
    signature made with any of `secrets`) or `stale_timestamp` (more than `tolerance` seconds
    from `now`, either way). Every comparison is constant-time.
    """
    event_id, timestamp, candidates = _check_format(headers)
    expected = [_digest(secret, event_id, timestamp, body) for secret in secrets]
    matched = False
    for candidate in candidates:
        for digest in expected:
            # No early exit: every pair is compared, whatever matches.
            matched |= hmac.compare_digest(candidate, digest)
    if not matched:
        raise SignatureError(
            "invalid_signature", "No signature matches the event id, timestamp and body."
        )
    return _within_tolerance(int(timestamp), tolerance, now)


def _within_tolerance(signed_at: int, tolerance: int, now: float | None) -> int:
    current = time.time() if now is None else now
    if abs(current - signed_at) > tolerance:
        raise SignatureError(
            "stale_timestamp",
            f"The timestamp is {int(current - signed_at)} s from the server's clock; "
            f"at most {tolerance} s is accepted.",
        )
    return signed_at


# ---------------------------------------------------------------- Stripe's scheme

# Stripe signs `{t}.{raw body}` with HMAC-SHA256 keyed by the endpoint's signing secret as it is
# written (`whsec_...`, its UTF-8 bytes: Stripe does not decode it) and sends
# `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`; entries of other schemes (`v0`,
# test-mode extras) are ignored. Several v1 entries come while Stripe rolls the endpoint's
# secret; the server may hold several secrets too (STRIPE_WEBHOOK_SECRET, comma-separated).
STRIPE_HEADER = "Stripe-Signature"
_STRIPE_V1 = re.compile(r"^[0-9a-fA-F]{64}$")


def _stripe_digest(secret: str, timestamp: int | str, body: bytes) -> bytes:
    if not secret:
        raise ValueError("a Stripe signing secret may not be empty")
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def stripe_signature_header(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """The `Stripe-Signature` value Stripe would send: `t=...` and one `v1=` per secret."""
    signatures = [f"v1={_stripe_digest(secret, timestamp, body).hex()}" for secret in secrets]
    return ",".join([f"t={timestamp}", *signatures])


def _parse_stripe_header(header: str | None) -> tuple[str, list[bytes]]:
    if not header:
        raise SignatureError("invalid_signature", f"The request carries no {STRIPE_HEADER} header.")
    timestamps, digests = [], []
    for item in header.split(","):
        scheme, _, value = item.strip().partition("=")
        if scheme == "t":
            timestamps.append(value)
        elif scheme == "v1" and _STRIPE_V1.match(value):
            digests.append(bytes.fromhex(value))
    if len(timestamps) != 1 or not _TIMESTAMP.match(timestamps[0]):
        raise SignatureError(
            "invalid_signature", f"{STRIPE_HEADER} must carry one t=<Unix seconds>."
        )
    if not digests:
        raise SignatureError("invalid_signature", f"{STRIPE_HEADER} carries no v1=<hex> signature.")
    return timestamps[0], digests


def verify_stripe(
    secrets: Sequence[str],
    header: str | None,
    body: bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check a Stripe delivery's signature, then its timestamp; return the timestamp.

    The same errors as `verify`, in the same order; every comparison is constant-time.
    """
    timestamp, candidates = _parse_stripe_header(header)
    expected = [_stripe_digest(secret, timestamp, body) for secret in secrets]
    matched = False
    for candidate in candidates:
        for digest in expected:
            matched |= hmac.compare_digest(candidate, digest)
    if not matched:
        raise SignatureError("invalid_signature", "No signature matches the timestamp and body.")
    return _within_tolerance(int(timestamp), tolerance, now)
