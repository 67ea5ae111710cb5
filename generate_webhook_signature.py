#!/usr/bin/env python3
"""Sign a payment event the way the provider does, to call POST /webhooks/payment by hand; or,
with --stripe, a Stripe event the way Stripe does, to call POST /webhooks/stripe.

Prints the signing headers and a ready curl command. Examples:

  WEBHOOK_SECRET=s3cret python generate_webhook_signature.py \\
      '{"type": "payment.succeeded", "order_id": 1, "amount": "39.98", "payment_id": "pay_1"}'
  python generate_webhook_signature.py --secret s3cret --file event.json --standard
  echo -n '{"type": ...}' | python generate_webhook_signature.py --secret s3cret
  STRIPE_WEBHOOK_SECRET=whsec_... python generate_webhook_signature.py --stripe --file evt.json
"""

import argparse
import json
import os
import shlex
import sys
import time
import uuid
from pathlib import Path

from app import signing

WEBHOOK_PATH = "/webhooks/payment"
STRIPE_PATH = "/webhooks/stripe"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Print the signing headers and a curl command for a payment webhook call.",
        epilog="The signature is HMAC-SHA256 over `{event_id}.{timestamp}.{raw body}`.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("body", nargs="?", help="the JSON body (default: read from stdin)")
    source.add_argument("--file", type=Path, help="read the body from this file, byte for byte")
    parser.add_argument(
        "--secret",
        default=None,
        help="the shared secret; several, comma-separated, sign with each "
        "(default: $WEBHOOK_SECRET, or with --stripe $STRIPE_WEBHOOK_SECRET)",
    )
    parser.add_argument("--event-id", default=None, help="the event id (default: a new UUID)")
    parser.add_argument(
        "--timestamp", type=int, default=None, help="Unix seconds to sign at (default: now)"
    )
    parser.add_argument(
        "--base-url",
        default=os.environ.get("BASE_URL", "http://127.0.0.1:8000"),
        help="where the service runs (default: $BASE_URL or %(default)s)",
    )
    parser.add_argument(
        "--standard",
        action="store_true",
        help="print Standard Webhooks headers (webhook-id, webhook-timestamp, "
        "webhook-signature: v1,<base64>) instead of the X-* ones",
    )
    parser.add_argument(
        "--stripe",
        action="store_true",
        help="sign a Stripe event as Stripe does (Stripe-Signature: t=<now>,v1=<hex>, keyed by "
        "the endpoint's whsec_ secret as written) for POST /webhooks/stripe; the event id is "
        "the body's own `id`",
    )
    args = parser.parse_args(argv)
    if args.stripe and (args.standard or args.event_id):
        parser.error("--stripe signs the body alone: --standard and --event-id do not apply")
    if args.secret is None and args.stripe:
        args.secret = os.environ.get("STRIPE_WEBHOOK_SECRET")
    elif args.secret is None:
        args.secret = os.environ.get("WEBHOOK_SECRET")
    return args


def read_body(args: argparse.Namespace) -> bytes:
    if args.file is not None:
        return args.file.read_bytes()
    if args.body is not None:
        return args.body.encode("utf-8")
    return sys.stdin.buffer.read()


def curl_command(
    base_url: str,
    headers: dict[str, str],
    body: bytes,
    file: Path | None,
    path: str = WEBHOOK_PATH,
) -> str:
    data = f"@{file}" if file is not None else body.decode("utf-8")
    parts = [
        f"curl -sS -i -X POST {shlex.quote(base_url.rstrip('/') + path)}",
        "-H 'Content-Type: application/json'",
    ]
    parts += [f"-H {shlex.quote(f'{name}: {value}')}" for name, value in headers.items()]
    parts.append(f"--data-binary {shlex.quote(data)}")
    return " \\\n  ".join(parts)


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    secrets = signing.parse_secrets(args.secret)
    if not secrets:
        variable = "STRIPE_WEBHOOK_SECRET" if args.stripe else "WEBHOOK_SECRET"
        print(f"error: give the secret with --secret or {variable}", file=sys.stderr)
        return 2
    body = read_body(args)
    if args.file is None and not _is_utf8(body):
        print("error: the body is not UTF-8 text; pass it with --file", file=sys.stderr)
        return 2
    try:
        json.loads(body)
    except ValueError:
        print("warning: the body is not valid JSON; the service will answer 400", file=sys.stderr)
    timestamp = int(time.time()) if args.timestamp is None else args.timestamp
    path = STRIPE_PATH if args.stripe else WEBHOOK_PATH
    try:
        if args.stripe:
            header = signing.stripe_signature_header(secrets, timestamp, body)
            headers = {signing.STRIPE_HEADER: header}
        else:
            event_id = args.event_id or str(uuid.uuid4())
            headers = signing.signed_headers(
                secrets, event_id, timestamp, body, standard=args.standard
            )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name, value in headers.items():
        print(f"{name}: {value}")
    print()
    print(curl_command(args.base_url, headers, body, args.file, path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
