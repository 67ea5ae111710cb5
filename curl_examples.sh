#!/usr/bin/env bash
# A walk through the whole Orders & Inventory API with curl, one call at a time.
#
#   ./curl_examples.sh                                   # against http://127.0.0.1:8000
#   BASE_URL=https://orders.example.com API_KEY=... WEBHOOK_SECRET=... ./curl_examples.sh
#
# Every call prints its method, path, status and response body, and is checked against the
# status (and error `code`) the contract promises; the first surprise stops the walk with a
# non-zero exit. SKUs are unique per run, so it can run again and again against one server.
#
# Settings (environment):
#   BASE_URL        the service (default http://127.0.0.1:8000)
#   API_KEY         sent as `Authorization: Bearer <key>` on every call but the webhook
#   WEBHOOK_SECRET  the server's webhook secret (the first one, if it holds several); without
#                   it the payment steps are skipped and the order is marked paid with PUT.
#   STRIPE_WEBHOOK_SECRET  the server's Stripe signing secret (whsec_..., the first one); without
#                   it the Stripe webhook steps are skipped.
#   EVENT_RECEIVER_URL  a URL to subscribe to events (created, read and deleted again); without
#                   it the subscription steps are skipped. It must be public unless the server
#                   runs with EVENT_ALLOW_PRIVATE_URLS=true.
# Needs curl, openssl (to sign the webhook) and jq or python3 (to read JSON).
set -euo pipefail

BASE_URL=${BASE_URL:-http://127.0.0.1:8000}
BASE_URL=${BASE_URL%/}
API_KEY=${API_KEY:-}
WEBHOOK_SECRET=${WEBHOOK_SECRET:-}
STRIPE_WEBHOOK_SECRET=${STRIPE_WEBHOOK_SECRET:-}
EVENT_RECEIVER_URL=${EVENT_RECEIVER_URL:-}
RUN="$(date +%s)-$$-$RANDOM"

STATUS=""   # the last call's HTTP status
BODY=""     # the last call's response body
STEP=0

if [[ -t 1 ]]; then GREEN=$'\e[32m' RED=$'\e[31m' DIM=$'\e[2m' OFF=$'\e[0m'
else GREEN="" RED="" DIM="" OFF=""; fi

fail() {
  echo "${RED}FAIL: $*${OFF}" >&2
  exit 1
}

for tool in curl openssl; do
  command -v "$tool" >/dev/null || fail "$tool is needed and not installed"
done

# Prints one top-level member of the last response body (empty when absent).
field() {
  if command -v jq >/dev/null; then
    jq -r --arg k "$1" 'if type == "object" and has($k) then .[$k] | tostring else "" end' \
      <<<"$BODY"
  else
    python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); v=d.get(sys.argv[1], "") if isinstance(d, dict) else ""
print(json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v)' "$1" <<<"$BODY"
  fi
}

# call EXPECTED METHOD PATH [JSON_BODY] [curl options...]: one API call, printed and checked.
call() {
  local expected=$1 method=$2 path=$3 data=${4:-}
  shift $(( $# < 4 ? $# : 4 ))
  local args=(-sS -X "$method" -o "$tmp/body" -w '%{http_code}' -H 'Accept: application/json')
  if [[ -n $API_KEY && $path != /webhooks/* ]]; then
    args+=(-H "Authorization: Bearer $API_KEY")
  fi
  if [[ -n $data ]]; then
    args+=(-H 'Content-Type: application/json' --data-binary "$data")
  fi
  STEP=$((STEP + 1))
  printf '\n%s%2d. %s %s%s\n' "$DIM" "$STEP" "$method" "$path" "$OFF"
  [[ -n $data ]] && printf '    request:  %s\n' "$data"
  STATUS=$(curl "${args[@]}" "$@" "$BASE_URL$path") || fail "$method $path: curl could not reach $BASE_URL"
  BODY=$(cat "$tmp/body")
  printf '    response: %s\n' "${BODY:-(empty)}"
  if [[ $STATUS != "$expected" ]]; then
    fail "$method $path answered $STATUS, expected $expected"
  fi
  printf '    %s%s OK%s (expected %s)\n' "$GREEN" "$STATUS" "$OFF" "$expected"
}

# expect NAME VALUE: the last response's top-level member NAME equals VALUE.
expect() {
  local actual
  actual=$(field "$1")
  [[ $actual == "$2" ]] || fail "expected $1 = $2, got '${actual}' (step $STEP)"
  printf '    %s%s = %s OK%s\n' "$GREEN" "$1" "$2" "$OFF"
}

# Signs a webhook body as the contract says: HMAC-SHA256 hex over `{id}.{timestamp}.{body}`.
# A `whsec_<base64>` secret is used as the key it decodes to, any other as its bytes.
sign() {
  local event_id=$1 timestamp=$2 body=$3 secret=${WEBHOOK_SECRET%%,*}
  local key_opt
  if [[ $secret == whsec_* ]]; then
    key_opt="hexkey:$(printf '%s' "${secret#whsec_}" | openssl base64 -d -A | od -An -vtx1 | tr -d ' \n')"
  else
    key_opt="key:$secret"
  fi
  printf '%s.%s.%s' "$event_id" "$timestamp" "$body" |
    openssl dgst -sha256 -mac HMAC -macopt "$key_opt" -hex | awk '{print $NF}'
}

# webhook EXPECTED EVENT_ID BODY [SIGNATURE]: a signed call to POST /webhooks/payment.
webhook() {
  local expected=$1 event_id=$2 body=$3 timestamp signature
  timestamp=$(date +%s)
  signature=${4:-sha256=$(sign "$event_id" "$timestamp" "$body")}
  call "$expected" POST /webhooks/payment "$body" \
    -H "X-Event-Id: $event_id" -H "X-Webhook-Timestamp: $timestamp" \
    -H "X-Webhook-Signature: $signature"
}

# stripe_webhook EXPECTED BODY [SIGNATURE]: a call to POST /webhooks/stripe signed as Stripe
# signs: `Stripe-Signature: t=<now>,v1=<hex HMAC-SHA256 of "{t}.{body}">`, keyed by the whsec_
# secret as written (its bytes, not decoded).
stripe_webhook() {
  local expected=$1 body=$2 timestamp signature
  timestamp=$(date +%s)
  signature=${3:-$(printf '%s.%s' "$timestamp" "$body" |
    openssl dgst -sha256 -mac HMAC -macopt "key:${STRIPE_WEBHOOK_SECRET%%,*}" -hex | awk '{print $NF}')}
  call "$expected" POST /webhooks/stripe "$body" \
    -H "Stripe-Signature: t=$timestamp,v1=$signature"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "Orders & Inventory API walk-through against $BASE_URL (run $RUN)"
[[ -n $API_KEY ]] && echo "Sending API_KEY as a bearer token."

echo; echo "== Operations"
call 200 GET /healthz
call 200 GET /readyz

echo; echo "== Products"
call 201 POST /products "{\"sku\": \"CURL-$RUN-MUG\", \"name\": \"Curl mug $RUN\", \"description\": \"Stoneware, 350 ml\", \"price\": \"12.50\", \"stock\": 10}"
MUG=$(field id)
expect price 12.50
expect stock 10
call 201 POST /products "{\"sku\": \"CURL-$RUN-TEE\", \"name\": \"Curl tee $RUN\", \"price\": 19.99, \"stock\": 3}"
TEE=$(field id)
call 409 POST /products "{\"sku\": \"CURL-$RUN-MUG\", \"name\": \"Same SKU again\", \"price\": \"1.00\"}"
expect code sku_conflict
call 422 POST /products "{\"sku\": \"CURL-$RUN-BAD\", \"name\": \"Negative price\", \"price\": -1}"
expect code validation_error
call 200 GET "/products?limit=5"
call 200 GET "/products?sku=CURL-$RUN-MUG"
expect total 1
call 200 GET "/products?q=curl%20tee%20$RUN&in_stock=true"
expect total 1
call 200 GET "/products?q=curl-$RUN&sort=-price&limit=1"
expect total 2
[[ $(field items) == *"CURL-$RUN-TEE"* ]] || fail "sort=-price did not list the dearer tee first"
NEXT=$(field next)
call 200 GET "/products?q=curl-$RUN&sort=-price&limit=1&after=$NEXT"
[[ $(field items) == *"CURL-$RUN-MUG"* ]] || fail "the page after the cursor is not the mug"
call 422 GET "/products?q=curl-$RUN&sort=name&limit=1&after=$NEXT"
expect code invalid_cursor
call 200 GET "/products/$MUG" "" -D "$tmp/headers"
expect sku "CURL-$RUN-MUG"
ETAG=$(tr -d '\r' <"$tmp/headers" | awk 'tolower($1) == "etag:" {print $2}')
[[ -n $ETAG ]] || fail "GET /products/$MUG sent no ETag"
call 304 GET "/products/$MUG" "" -H "If-None-Match: $ETAG"
call 404 GET /products/2147483647
expect code product_not_found
call 200 PATCH "/products/$MUG" '{"price": "11.00", "name": "Curl mug (sale)"}'
expect price 11.00
call 200 PUT "/products/$TEE" '{"stock": 5}'
expect stock 5

echo; echo "== Orders"
call 201 POST /orders "{\"items\": [{\"product_id\": $MUG, \"quantity\": 2}, {\"product_id\": $TEE, \"quantity\": 1}]}"
ORDER=$(field id)
TOTAL=$(field total)
expect status PENDING
expect total 41.99
call 200 GET "/products/$MUG"
expect stock 8
call 409 POST /orders "{\"product_id\": $MUG, \"quantity\": 9}"
expect code insufficient_stock
call 200 GET "/products/$MUG"
expect stock 8
call 200 GET "/orders?status=PENDING&product_id=$MUG"
expect total 1
call 200 GET "/orders?sort=-total&limit=5"
call 200 GET "/orders/$ORDER" "" -D "$tmp/headers"
expect status PENDING
ORDER_ETAG=$(tr -d '\r' <"$tmp/headers" | awk 'tolower($1) == "etag:" {print $2}')
call 304 GET "/orders/$ORDER" "" -H "If-None-Match: $ORDER_ETAG"
call 412 PATCH "/orders/$ORDER" '{"status": "CANCELED"}' -H 'If-Match: "not-the-etag"'
expect code precondition_failed
expect etag "$ORDER_ETAG"
call 404 GET /orders/2147483647
expect code order_not_found

echo; echo "== Payment webhook"
if [[ -n $WEBHOOK_SECRET ]]; then
  EVENT="evt_curl_$RUN"
  PAYMENT="{\"type\": \"payment.succeeded\", \"order_id\": $ORDER, \"amount\": \"$TOTAL\", \"payment_id\": \"pay_$RUN\"}"
  webhook 401 "evt_curl_forged_$RUN" "$PAYMENT" "sha256=$(printf '0%.0s' {1..64})"
  expect code invalid_signature
  webhook 200 "$EVENT" "$PAYMENT"
  expect duplicate false
  expect order_status PAID
  webhook 200 "$EVENT" "$PAYMENT"
  expect duplicate true
else
  echo "WEBHOOK_SECRET is not set: skipping the signed payment; marking the order paid with PUT."
  call 200 PUT "/orders/$ORDER" '{"status": "PAID"}'
fi
call 200 GET "/orders/$ORDER"
expect status PAID

echo; echo "== Shipments: goods leave the shelf"
# PARTIALLY_SHIPPED is reached by shipping part of an order, never set by a status move.
call 409 PATCH "/orders/$ORDER" '{"status": "PARTIALLY_SHIPPED"}'
expect code invalid_status_transition
# Part of the order first, with tracking: on_hand and committed fall together, available stays.
call 201 POST "/orders/$ORDER/shipments" "{\"items\": [{\"product_id\": $MUG, \"quantity\": 1}], \"carrier\": \"UPS\", \"tracking_number\": \"1Z$RUN\", \"tracking_url\": \"https://www.ups.com/track?tracknum=1Z$RUN\"}" -H "Idempotency-Key: ship-$RUN"
SHIPMENT=$(field id)
expect carrier UPS
call 200 GET "/orders/$ORDER"
expect status PARTIALLY_SHIPPED
call 200 GET "/products/$MUG"
expect on_hand 9
expect committed 1
expect available 8
call 409 POST "/orders/$ORDER/shipments" "{\"items\": [{\"product_id\": $MUG, \"quantity\": 2}]}"
expect code exceeds_remaining
expect remaining 1
call 422 POST "/orders/$ORDER/shipments" '{"tracking_url": "http://tracking.example/1"}'
expect code validation_error
# Then everything that remains (no items).
call 201 POST "/orders/$ORDER/shipments" '{"carrier": "UPS"}'
call 200 GET "/orders/$ORDER"
expect status SHIPPED
call 200 GET "/orders/$ORDER/shipments"
expect total 2
call 200 GET "/orders/$ORDER/shipments/$SHIPMENT"
expect id "$SHIPMENT"
call 200 GET "/products/$MUG"
expect on_hand 8
expect committed 0
expect stock 8
# Clients of earlier versions ship with a status move: the rest of the order (here, nothing).
call 200 PUT "/orders/$ORDER" '{"status": "SHIPPED"}'
expect status SHIPPED

echo; echo "== Cancelling"
call 409 PATCH "/orders/$ORDER" '{"status": "PENDING"}'
expect code invalid_status_transition
call 201 POST /orders "{\"product_id\": $MUG, \"quantity\": 3}"
SECOND=$(field id)
call 200 GET "/products/$MUG"
expect stock 5
call 200 DELETE "/orders/$SECOND"
expect status CANCELED
call 200 GET "/products/$MUG"
expect stock 8
call 409 DELETE "/orders/$ORDER"
expect code invalid_status_transition

echo; echo "== Stock ledger: restocking with adjustments"
ADJUST="{\"delta\": 12, \"reason\": \"received\", \"reference\": \"PO-$RUN\", \"note\": \"Pallet 1 of 1\"}"
call 201 POST "/products/$MUG/stock-adjustments" "$ADJUST" -H "Idempotency-Key: restock-$RUN"
MOVEMENT=$(field id)
expect delta 12
expect reason received
expect stock_after 20
call 201 POST "/products/$MUG/stock-adjustments" "$ADJUST" -H "Idempotency-Key: restock-$RUN" -D "$tmp/headers"
expect id "$MOVEMENT"
grep -qi '^idempotent-replayed: true' "$tmp/headers" || fail "the retry was not answered as a replay"
printf '    %sIdempotent-Replayed: true OK%s\n' "$GREEN" "$OFF"
call 200 GET "/products/$MUG"
expect stock 20
call 409 POST "/products/$MUG/stock-adjustments" '{"delta": -21, "reason": "damaged"}'
expect code insufficient_stock
expect available 20
call 422 POST "/products/$MUG/stock-adjustments" '{"delta": 0, "reason": "received"}'
expect code validation_error
call 200 GET "/products/$MUG/stock-movements?limit=2"
expect total 7
call 200 GET "/products/$MUG/stock-movements/$MOVEMENT"
expect stock_after 20

echo; echo "== Stock counts: a stocktake, and the movements by reason"
COUNT="{\"on_hand\": 19, \"reference\": \"STK-$RUN\", \"note\": \"Aisle 4\"}"
call 201 POST "/products/$MUG/stock-counts" "$COUNT" -H "Idempotency-Key: count-$RUN"
expect reason counted
expect on_hand_delta -1
expect on_hand_after 19
call 201 POST "/products/$MUG/stock-counts" "$COUNT" -H "Idempotency-Key: count-$RUN" -D "$tmp/headers"
grep -qi '^idempotent-replayed: true' "$tmp/headers" || fail "the retried count was not answered as a replay"
# A count that finds what the ledger says is recorded too: the shelf was counted.
call 201 POST "/products/$MUG/stock-counts" '{"on_hand": 19}'
expect on_hand_delta 0
call 422 POST "/products/$MUG/stock-counts" '{"on_hand": 19, "counted_at": "2999-01-01T00:00:00Z"}'
expect code validation_error
call 200 GET "/products/$MUG"
expect stock 19
call 200 GET "/products/$MUG/stock-movements?reason=shipped"
expect total 2
call 200 GET "/products/$MUG/stock-movements?reason=counted&reason=received"
expect total 3
call 422 GET "/products/$MUG/stock-movements?reason=restocked"
expect code validation_error
SINCE=$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || date -u -v-1H +%Y-%m-%dT%H:%M:%SZ)
call 200 GET "/orders?product_id=$MUG&created_after=$SINCE"
expect total 2

echo; echo "== Events: the feed and a push subscription"
call 200 GET "/events?limit=100"
NEXT=$(field next)
[[ -n $NEXT ]] || fail "GET /events gave no next cursor"
call 200 GET "/events?type=order.paid&type=order.canceled&limit=5"
call 200 GET "/events?after=$NEXT"
# Nothing newer: the page is empty and next stays where it was. (A page may also show events
# committed since, or held back until then by a transaction open elsewhere on PostgreSQL.)
if [[ $(field items) == "[]" ]]; then
  expect next "$NEXT"
else
  [[ -n $(field next) ]] || fail "GET /events?after=... gave no next cursor"
fi
call 422 GET "/events?after=not-a-cursor"
expect code invalid_cursor
call 422 POST /event-subscriptions '{"url": "ftp://127.0.0.1/hooks", "types": ["*"]}'
expect code url_not_allowed
if [[ -n $EVENT_RECEIVER_URL ]]; then
  call 201 POST /event-subscriptions "{\"url\": \"$EVENT_RECEIVER_URL\", \"types\": [\"order.paid\", \"order.canceled\"], \"description\": \"curl walk-through $RUN\"}"
  SUBSCRIPTION=$(field id)
  [[ $(field secret) == whsec_* ]] || fail "the new subscription's secret is not whsec_..."
  call 200 GET "/event-subscriptions/$SUBSCRIPTION"
  expect secret ""
  call 200 GET /event-subscriptions
  call 200 GET "/event-subscriptions/$SUBSCRIPTION/deliveries"
  # Pause it (nothing is sent or queued while disabled), describe it, and enable it again.
  call 200 PATCH "/event-subscriptions/$SUBSCRIPTION" '{"enabled": false, "description": "paused"}'
  expect enabled false
  call 200 PATCH "/event-subscriptions/$SUBSCRIPTION" '{"enabled": true}'
  expect enabled true
  call 422 PATCH "/event-subscriptions/$SUBSCRIPTION" '{"url": "ftp://127.0.0.1/hooks"}'
  expect code url_not_allowed
  # A new secret; the old one signs beside it for 60 s more.
  call 200 POST "/event-subscriptions/$SUBSCRIPTION/rotate-secret" '{"expire_old_after_seconds": 60}'
  [[ $(field secret) == whsec_* ]] || fail "the rotated secret is not whsec_..."
  [[ -n $(field previous_secret_expires_at) ]] || fail "the rotation gave no overlap"
  # A signed ping, sent now: the answer says what the receiver answered.
  call 200 POST "/event-subscriptions/$SUBSCRIPTION/test"
  [[ -n $(field event_id) ]] || fail "the test ping gave no event_id"
  call 404 POST "/event-subscriptions/$SUBSCRIPTION/deliveries/999999999/retry"
  expect code not_found
  call 204 DELETE "/event-subscriptions/$SUBSCRIPTION"
  call 404 GET "/event-subscriptions/$SUBSCRIPTION"
else
  echo "EVENT_RECEIVER_URL is not set: skipping the subscription steps."
fi

echo; echo "== Stripe webhook"
if [[ -n $STRIPE_WEBHOOK_SECRET ]]; then
  call 201 POST /orders "{\"product_id\": $MUG, \"quantity\": 1}"
  STRIPE_ORDER=$(field id)
  # Stripe counts amounts in minor units: 12.50 is 1250.
  STRIPE_TOTAL=$(field total)
  CENTS=$((10#${STRIPE_TOTAL/./}))
  INTENT="{\"id\": \"pi_curl_$STEP$$\", \"object\": \"payment_intent\", \"amount\": $CENTS, \"amount_received\": $CENTS, \"currency\": \"$(field currency | tr 'A-Z' 'a-z')\", \"status\": \"succeeded\", \"metadata\": {\"order_id\": \"$STRIPE_ORDER\"}}"
  STRIPE_EVENT="{\"id\": \"evt_curl_${RUN//-/_}\", \"object\": \"event\", \"type\": \"payment_intent.succeeded\", \"data\": {\"object\": $INTENT}}"
  stripe_webhook 401 "$STRIPE_EVENT" "$(printf '0%.0s' {1..64})"
  expect code invalid_signature
  stripe_webhook 200 "$STRIPE_EVENT"
  expect order_status PAID
  stripe_webhook 200 "$STRIPE_EVENT"
  expect duplicate true
  stripe_webhook 200 '{"id": "evt_curl_other", "object": "event", "type": "customer.created", "data": {"object": {}}}'
  expect ignored true
else
  echo "STRIPE_WEBHOOK_SECRET is not set: skipping the Stripe webhook steps."
fi
echo; echo "== Catalog: export, then import (CSV) with a dry run first"
call 200 GET "/products/export?format=ndjson"
grep -q "\"CURL-$RUN-MUG\"" <<<"$BODY" || fail "the export does not list CURL-$RUN-MUG"
printf '    %sCURL-%s-MUG exported OK%s\n' "$GREEN" "$RUN" "$OFF"
CATALOG=$(printf 'sku,name,price,on_hand\nCURL-%s-MUG,,13.00,\nCURL-%s-CAP,Curl cap %s,7.50,4\n' "$RUN" "$RUN" "$RUN")
call 200 POST "/products/import?dry_run=true" "" -H 'Content-Type: text/csv' --data-binary "$CATALOG"
expect created 1
expect updated 1
expect errors "[]"
VERSION=$(field catalog_version)
call 200 POST /products/import "" -H 'Content-Type: text/csv' -H "If-Match: $VERSION" \
  -H "Idempotency-Key: import-$RUN" --data-binary "$CATALOG"
expect created 1
call 412 POST /products/import "" -H 'Content-Type: text/csv' -H "If-Match: $VERSION" --data-binary "$CATALOG"
expect code precondition_failed
call 200 GET "/products/$MUG"
expect price 13.00
call 422 POST /products/import "" -H 'Content-Type: application/x-ndjson' \
  --data-binary "{\"sku\": \"CURL-$RUN-NEW\", \"price\": -1}"
expect code import_invalid
call 415 POST /products/import "" -H 'Content-Type: application/json' --data-binary '{"sku": "X"}'
expect code unsupported_media_type

echo; echo "== An order as a storefront places it: charges, its own id, the customer, metadata"
call 201 POST /products "{\"sku\": \"CURL-$RUN-HAT\", \"name\": \"Curl hat $RUN\", \"price\": \"20.00\", \"on_hand\": 5}"
CAP=$(field id)
SHOP_ORDER_BODY="{\"items\": [{\"product_id\": $CAP, \"quantity\": 2}], \"charges\": [{\"kind\": \"shipping\", \"amount\": \"4.99\", \"label\": \"Standard\"}, {\"kind\": \"tax\", \"amount\": \"3.20\"}, {\"kind\": \"discount\", \"amount\": \"5.00\", \"label\": \"WELCOME5\"}], \"external_id\": \"shop-$RUN\", \"customer\": {\"email\": \"ada-$RUN@example.com\", \"name\": \"Ada Lovelace\"}, \"metadata\": {\"channel\": \"web\", \"cart\": \"c-$RUN\"}}"
call 201 POST /orders "$SHOP_ORDER_BODY"
SHOP_ORDER=$(field id)
expect subtotal 40.00
expect total 43.19
expect external_id "shop-$RUN"
expect payment_status unpaid
# The same external_id again, even after the Idempotency-Key window: 409 naming the order.
call 409 POST /orders "$SHOP_ORDER_BODY"
expect code external_id_conflict
expect order_id "$SHOP_ORDER"
# Metadata merges: a key set to null is removed.
call 200 PATCH "/orders/$SHOP_ORDER" '{"metadata": {"cart": null, "gift": "yes"}}'
[[ $BODY == *'"metadata":{"channel":"web","gift":"yes"}'* ]] || fail "metadata not merged (step $STEP)"
call 200 GET "/orders?external_id=shop-$RUN"
expect total 1
call 200 GET "/orders?customer_email=ADA-$RUN@example.com&payment_status=unpaid"
expect total 1
call 200 GET "/orders?q=shop-$RUN"
expect total 1

echo; echo "== Refunds: money back, and the units it covers"
if [[ -n $WEBHOOK_SECRET ]]; then
  webhook 200 "evt_curl_shop_$RUN" "{\"type\": \"payment.succeeded\", \"order_id\": $SHOP_ORDER, \"amount\": \"43.19\", \"payment_id\": \"pay_shop_$RUN\"}"
  expect order_status PAID
  # One unit back: unshipped, it is released (committed falls); the provider's refund id once.
  REFUND_BODY="{\"items\": [{\"product_id\": $CAP, \"quantity\": 1}], \"reason\": \"requested_by_customer\", \"provider_refund_id\": \"re_curl_$RUN\"}"
  call 201 POST "/orders/$SHOP_ORDER/refunds" "$REFUND_BODY"
  expect amount 20.00
  call 200 POST "/orders/$SHOP_ORDER/refunds" "$REFUND_BODY"
  expect source api
  # The provider reports the same refund: recorded already, a duplicate.
  webhook 200 "evt_curl_refund_$RUN" "{\"type\": \"payment.refunded\", \"order_id\": $SHOP_ORDER, \"amount\": \"20.00\", \"payment_id\": \"pay_shop_$RUN\", \"refund_id\": \"re_curl_$RUN\"}"
  expect duplicate true
  call 409 POST "/orders/$SHOP_ORDER/refunds" '{"amount": "30.00"}'
  expect code refund_exceeds_paid
  call 200 GET "/orders/$SHOP_ORDER"
  expect amount_refunded 20.00
  expect payment_status partially_refunded
  call 200 GET "/orders/$SHOP_ORDER/refunds"
  expect total 1
else
  echo "WEBHOOK_SECRET is not set: skipping refunds (an order is paid through the webhook only)."
fi

echo; echo "== Archiving"
call 204 DELETE "/products/$TEE"
call 404 GET "/products/$TEE"
expect code product_not_found
call 404 POST /orders "{\"product_id\": $TEE, \"quantity\": 1}"
expect code product_not_found
call 200 GET "/orders/$ORDER"
call 404 GET /no-such-route
expect code not_found

echo
echo "${GREEN}All $STEP calls answered as expected.${OFF}"
