"""An order's money and links over HTTP (both engines): charges, subtotal and total, the
storefront's external_id, the customer, metadata and its merge-PATCH, the payment fields the
webhook sets, and the list filters on them."""

import json

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from app.core.config import Settings
from app.main import create_app
from tests.support.factories import Db, orders_in_db, product_body, stock_of
from tests.support.serving import serving
from tests.support.webhooks import SECRET, deliver, event_body

CHARGES = [
    {"kind": "shipping", "amount": "4.99", "label": "UPS Ground"},
    {"kind": "tax", "amount": 2.5},
    {"kind": "fee", "amount": "1"},
    {"kind": "discount", "amount": "3.00", "label": "WELCOME3"},
]


def new_product(client: TestClient, **overrides) -> dict:
    return client.post("/products", json=product_body(**overrides)).json()


def place(client: TestClient, product: dict, quantity: int = 1, **fields):
    return client.post(
        "/orders", json={"items": [{"product_id": product["id"], "quantity": quantity}], **fields}
    )


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    return body


def events_of(db: Db, type_: str | None = None) -> list[dict]:
    """The recorded events (of one type), oldest first, read from the outbox itself (the feed
    holds new events back while a transaction is open elsewhere on a PostgreSQL server)."""
    rows = db.rows("SELECT type, data FROM events ORDER BY seq")
    return [
        {"type": row["type"], "data": json.loads(row["data"])}
        for row in rows
        if type_ is None or row["type"] == type_
    ]


# ---------------------------------------------------------------- placing


def test_charges_make_the_total_and_are_shown_as_sent(client, db: Db):
    mug = new_product(client, price="10.00", stock=5)

    response = place(client, mug, 2, charges=CHARGES)

    assert response.status_code == 201, response.text
    order = response.json()
    assert order["subtotal"] == "20.00"
    assert order["total"] == "25.49"  # 20.00 + 4.99 + 2.50 + 1.00 - 3.00
    assert order["charges"] == [
        {"kind": "shipping", "amount": "4.99", "label": "UPS Ground"},
        {"kind": "tax", "amount": "2.50", "label": None},
        {"kind": "fee", "amount": "1.00", "label": None},
        {"kind": "discount", "amount": "3.00", "label": "WELCOME3"},
    ]
    assert client.get(f"/orders/{order['id']}").json() == order
    [created] = events_of(db, "order.created")
    assert created["data"]["order"] == order
    row = db.rows("SELECT subtotal_cents, total_cents FROM orders")[0]
    assert (row["subtotal_cents"], row["total_cents"]) == (2000, 2549)


def test_an_order_without_the_new_fields_shows_their_defaults(client):
    mug = new_product(client, price="7.25", stock=5)
    order = place(client, mug).json()
    assert {key: order[key] for key in list(order)[4:15]} == {
        "subtotal": "7.25",
        "charges": [],
        "total": "7.25",
        "external_id": None,
        "customer": None,
        "metadata": {},
        "payment_status": "unpaid",
        "payment_id": None,
        "amount_paid": "0.00",
        "amount_refunded": "0.00",
        "amount_refundable": "0.00",
    }


def test_a_discount_below_zero_total_is_422_and_takes_no_stock(client, db: Db):
    mug = new_product(client, price="5.00", stock=3)

    response = place(client, mug, 1, charges=[{"kind": "discount", "amount": "5.01"}])

    body = problem(response, 422, "validation_error")
    assert body["errors"][0]["loc"] == ["body", "charges"]
    assert stock_of(db, mug["id"]) == 3 and orders_in_db(db) == 0
    # A discount of exactly the subtotal is a free order.
    free = place(client, mug, 1, charges=[{"kind": "discount", "amount": "5.00"}]).json()
    assert free["total"] == "0.00"


@pytest.mark.parametrize(
    "fields",
    [
        {"charges": [{"kind": "gift", "amount": "1.00"}]},
        {"charges": [{"kind": "tax", "amount": "-1.00"}]},
        {"charges": [{"kind": "tax", "amount": "1.001"}]},
        {"charges": [{"kind": "tax", "amount": "1e1"}]},
        {"charges": [{"kind": "tax", "amount": "1.00", "label": "x" * 101}]},
        {"charges": [{"kind": "tax", "amount": "1.00", "rate": "0.2"}]},
        {"charges": [{"kind": "fee", "amount": "1"}] * 11},
        {"external_id": ""},
        {"external_id": "x" * 129},
        {"external_id": "tab\there"},
        {"external_id": " padded"},
        {"customer": {"email": "not-an-address"}},
        {"customer": {"email": "a@b@c"}},
        {"customer": {"email": "x" * 65 + "@example.com"}},
        {"customer": {"email": "a@" + "b" * 250 + ".com"}},
        {"customer": {"name": "n" * 201}},
        {"customer": {"phone": "123"}},
        {"metadata": {f"k{i}": "v" for i in range(51)}},
        {"metadata": {"k" * 41: "v"}},
        {"metadata": {"": "v"}},
        {"metadata": {"k": "v" * 501}},
        {"metadata": {"k": 1}},
        {"metadata": {"k": None}},
        {"metadata": ["k"]},
    ],
)
def test_invalid_money_and_links_are_422_and_place_nothing(client, db: Db, fields):
    mug = new_product(client, stock=3)
    problem(place(client, mug, 1, **fields), 422, "validation_error")
    assert stock_of(db, mug["id"]) == 3 and orders_in_db(db) == 0


def test_customer_and_metadata_are_kept_and_the_email_lower_cased(client):
    mug = new_product(client, stock=3)
    metadata = {f"key{i}": "v" * 500 for i in range(50)}
    customer = {"email": "Ada.Lovelace@Example.COM", "name": "Ada Lovelace"}

    order = place(client, mug, 1, customer=customer, metadata=metadata).json()

    assert order["customer"] == {"email": "ada.lovelace@example.com", "name": "Ada Lovelace"}
    assert order["metadata"] == metadata and list(order["metadata"]) == list(metadata)
    only_name = place(client, mug, 1, customer={"name": "Bob"}).json()
    assert only_name["customer"] == {"email": None, "name": "Bob"}
    assert place(client, mug, 1, customer={}).json()["customer"] is None


def test_the_one_line_shorthand_takes_the_order_fields_too(client):
    mug = new_product(client, stock=3)
    response = client.post(
        "/orders",
        json={
            "product_id": mug["id"],
            "quantity": 1,
            "external_id": "shop-7",
            "metadata": {"a": "b"},
        },
    )
    assert response.status_code == 201, response.text
    assert (response.json()["external_id"], response.json()["metadata"]) == ("shop-7", {"a": "b"})


def test_a_second_order_with_an_external_id_is_409_naming_the_first(client, db: Db):
    mug = new_product(client, stock=5)
    first = place(client, mug, 1, external_id="shop-1001").json()

    body = problem(place(client, mug, 2, external_id="shop-1001"), 409, "external_id_conflict")

    assert body["order_id"] == first["id"] and body["external_id"] == "shop-1001"
    assert stock_of(db, mug["id"]) == 4 and orders_in_db(db) == 1
    # Even with another Idempotency-Key, and when the first order was canceled.
    client.delete(f"/orders/{first['id']}")
    again = client.post(
        "/orders",
        json={"product_id": mug["id"], "quantity": 1, "external_id": "shop-1001"},
        headers={"Idempotency-Key": "k-2"},
    )
    assert problem(again, 409, "external_id_conflict")["order_id"] == first["id"]
    assert orders_in_db(db) == 1


def test_the_external_id_check_comes_before_the_stock_check(client, db: Db):
    mug = new_product(client, stock=1)
    first = place(client, mug, 1, external_id="shop-1").json()
    body = problem(place(client, mug, 1, external_id="shop-1"), 409, "external_id_conflict")
    assert body["order_id"] == first["id"]


def test_an_idempotent_retry_with_an_external_id_replays_the_order(client, db: Db):
    mug = new_product(client, stock=5)
    body = {"product_id": mug["id"], "quantity": 1, "external_id": "shop-9", "charges": CHARGES}
    first = client.post("/orders", json=body, headers={"Idempotency-Key": "k-9"})
    again = client.post("/orders", json=body, headers={"Idempotency-Key": "k-9"})
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json() and orders_in_db(db) == 1


# ---------------------------------------------------------------- PATCH and PUT


def test_patch_metadata_merges_and_null_removes(client, db: Db):
    mug = new_product(client, stock=3)
    order = place(client, mug, 1, metadata={"a": "1", "b": "2"}).json()

    response = client.patch(
        f"/orders/{order['id']}", json={"metadata": {"b": None, "c": "3", "a": "x"}}
    )

    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["metadata"] == {"a": "x", "c": "3"} and list(changed["metadata"]) == ["a", "c"]
    assert changed["status"] == "PENDING"
    assert client.get(f"/orders/{order['id']}").json() == changed
    [updated] = events_of(db, "order.updated")
    assert updated["data"] == {"order": changed}


def test_a_patch_that_changes_nothing_records_no_event(client, db: Db):
    mug = new_product(client, stock=3)
    order = place(client, mug, 1, metadata={"a": "1"}).json()
    same = client.put(f"/orders/{order['id']}", json={"metadata": {"a": "1", "gone": None}})
    assert same.status_code == 200 and same.json() == order
    assert events_of(db, "order.updated") == []


def test_patch_status_and_metadata_together(client, db: Db):
    mug = new_product(client, stock=3)
    order = place(client, mug, 1).json()
    response = client.patch(
        f"/orders/{order['id']}", json={"status": "CANCELED", "metadata": {"why": "fraud check"}}
    )
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["metadata"]) == (
        "CANCELED",
        {"why": "fraud check"},
    )
    assert [event["type"] for event in events_of(db)][-2:] == [
        "order.canceled",
        "order.updated",
    ]


def test_metadata_over_50_keys_after_the_merge_is_422_and_changes_nothing(client):
    mug = new_product(client, stock=3)
    order = place(client, mug, 1, metadata={f"k{i}": "v" for i in range(50)}).json()

    body = problem(
        client.patch(f"/orders/{order['id']}", json={"metadata": {"one": "more"}}),
        422,
        "validation_error",
    )

    assert body["errors"][0]["loc"] == ["body", "metadata"]
    assert client.get(f"/orders/{order['id']}").json() == order
    # Removing one makes room for another in the same change.
    swapped = client.patch(f"/orders/{order['id']}", json={"metadata": {"k0": None, "one": "more"}})
    assert swapped.status_code == 200 and len(swapped.json()["metadata"]) == 50


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"metadata": None},
        {"status": None},
        {"customer": {"name": "x"}},
        {"metadata": {"k": 1}},
        {"external_id": "x"},
        {"metadata": {"k" * 41: "v"}},
    ],
)
def test_patch_takes_status_and_metadata_only(client, body):
    mug = new_product(client, stock=3)
    order = place(client, mug, 1).json()
    problem(client.patch(f"/orders/{order['id']}", json=body), 422, "validation_error")
    assert client.get(f"/orders/{order['id']}").json() == order


def test_patch_metadata_of_an_unknown_order_is_404(client):
    problem(client.patch("/orders/999", json={"metadata": {"a": "b"}}), 404, "order_not_found")


# ---------------------------------------------------------------- payment


@pytest.fixture
def paying_client(settings: Settings, engine: Engine):
    configured = settings.model_copy(update={"webhook_secret": SecretStr(SECRET)})
    with serving(create_app(configured, engine)) as client:
        yield client


def test_a_payment_must_carry_the_total_with_charges_and_is_recorded(paying_client, db: Db):
    client = paying_client
    mug = new_product(client, price="10.00", stock=5)
    order = place(client, mug, 1, charges=[{"kind": "shipping", "amount": "5.00"}]).json()

    short = deliver(client, event_body(order, amount="10.00"))
    assert problem(short, 422, "amount_mismatch")["total"] == "15.00"

    paid = deliver(client, event_body(order, amount="15.00", payment_id="pi_42"))
    assert paid.status_code == 200 and paid.json()["order_status"] == "PAID"
    shown = client.get(f"/orders/{order['id']}").json()
    assert (shown["payment_status"], shown["payment_id"]) == ("paid", "pi_42")
    assert (shown["amount_paid"], shown["amount_refunded"], shown["amount_refundable"]) == (
        "15.00",
        "0.00",
        "15.00",
    )
    [event] = events_of(db, "order.paid")
    assert event["data"]["order"] == shown
    # A second success for the paid order changes nothing of its payment.
    deliver(client, event_body(order, amount="15.00", payment_id="pi_other"))
    assert client.get(f"/orders/{order['id']}").json()["payment_id"] == "pi_42"


def test_a_status_move_to_paid_moves_no_money(client):
    mug = new_product(client, stock=3)
    order = place(client, mug, 1).json()
    moved = client.patch(f"/orders/{order['id']}", json={"status": "PAID"}).json()
    assert (moved["status"], moved["payment_status"], moved["amount_paid"]) == (
        "PAID",
        "unpaid",
        "0.00",
    )


# ---------------------------------------------------------------- lists


def test_list_filters_by_external_id_customer_payment_status_and_q(paying_client):
    client = paying_client
    mug = new_product(client, stock=20)
    a = place(client, mug, 1, external_id="A-1", customer={"email": "ann@example.com"}).json()
    b = place(client, mug, 1, external_id="B-2", customer={"email": "bob@example.com"}).json()
    c = place(client, mug, 1, customer={"email": "ann@example.com"}).json()
    deliver(client, event_body(b))
    client.delete(f"/orders/{c['id']}")

    def ids(**params) -> list[int]:
        response = client.get("/orders", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["total"] == len(page["items"])
        return [order["id"] for order in page["items"]]

    assert ids(external_id="A-1") == [a["id"]]
    assert ids(external_id="nope") == []
    assert ids(customer_email="ANN@example.com") == [c["id"], a["id"]]
    assert ids(payment_status="paid") == [b["id"]]
    assert ids(payment_status=["paid", "unpaid"]) == [c["id"], b["id"], a["id"]]
    assert ids(status=["PAID", "CANCELED"]) == [c["id"], b["id"]]
    assert ids(status=["PENDING"], customer_email="ann@example.com") == [a["id"]]
    assert ids(q=str(b["id"])) == [b["id"]]
    assert ids(q="A-1") == [a["id"]]
    assert ids(q="Bob@Example.com") == [b["id"]]
    assert ids(q="99999999999") == []
    cursor_page = client.get(
        "/orders", params={"customer_email": "ann@example.com", "limit": 1}
    ).json()
    after = client.get(
        "/orders",
        params={"customer_email": "ann@example.com", "limit": 1, "after": cursor_page["next"]},
    ).json()
    assert [o["id"] for o in after["items"]] == [a["id"]] and after["total"] is None


@pytest.mark.parametrize(
    "params",
    [
        {"payment_status": "settled"},
        {"status": "LOST"},
        {"q": ""},
        {"external_id": "x" * 129},
        {"customer_email": ""},
    ],
)
def test_list_filters_refuse_bad_values(client, params):
    problem(client.get("/orders", params=params), 422, "validation_error")
