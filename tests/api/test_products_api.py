"""Products over HTTP: every row of the contract's product table, with the database checked."""

import pytest
from fastapi.testclient import TestClient

from tests.support.factories import Db, product_body, product_row

PROBLEM = "application/problem+json"


def create(client: TestClient, **overrides) -> dict:
    response = client.post("/products", json=product_body(**overrides))
    assert response.status_code == 201, response.text
    return response.json()


def test_create_product_answers_201_with_location_and_money_as_string(client, db: Db):
    response = client.post(
        "/products", json=product_body(sku="MUG-1", name="  Mug  ", price=19.9, stock=5)
    )

    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/products/{body['id']}"
    assert (body["sku"], body["name"], body["price"], body["stock"]) == ("MUG-1", "Mug", "19.90", 5)
    assert body["created_at"].endswith("Z")
    stored = product_row(db, body["id"])
    assert (stored.price_cents, stored.on_hand, stored.committed) == (1990, 5, 0)


def test_create_product_with_taken_sku_is_409_and_stores_nothing(client, db: Db):
    create(client, sku="MUG-1")

    response = client.post("/products", json=product_body(sku="MUG-1"))

    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "sku_conflict"
    assert client.get("/products", params={"sku": "MUG-1"}).json()["total"] == 1


def test_create_product_validation_errors_are_422_with_errors(client):
    bad_bodies = [
        product_body(price=0),
        product_body(price="1.999"),
        product_body(price=-1),
        product_body(price="100000000.00"),
        product_body(stock=-1),
        product_body(stock=2_147_483_648),
        product_body(sku="-starts-with-dash"),
        product_body(sku="x" * 65),
        product_body(name="   "),
        product_body(name="n" * 201),
        product_body(description="d" * 2001),
        product_body(colour="red"),
        product_body(stock="5"),
        {"name": "no sku", "price": "1.00"},
    ]
    for body in bad_bodies:
        response = client.post("/products", json=body)
        assert response.status_code == 422, body
        problem = response.json()
        assert problem["code"] == "validation_error"
        assert problem["errors"] and {"loc", "msg", "type"} <= problem["errors"][0].keys()
    assert client.get("/products").json()["total"] == 0


def test_list_products_envelope_paging_and_filters(client):
    for i in range(5):
        create(client, sku=f"P-{i}", name=f"Thing {i}", stock=i % 2)

    page = client.get("/products", params={"limit": 2, "offset": 1}).json()
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 1)
    assert [p["sku"] for p in page["items"]] == ["P-1", "P-2"]
    assert [p["sku"] for p in client.get("/products?sku=P-3").json()["items"]] == ["P-3"]
    assert client.get("/products?q=thing 4").json()["items"][0]["sku"] == "P-4"
    assert client.get("/products?in_stock=true").json()["total"] == 2
    assert client.get("/products?in_stock=false").json()["total"] == 3


def test_list_products_rejects_bad_paging(client):
    for query in ("limit=0", "limit=101", "offset=-1", "in_stock=maybe", "limit=abc"):
        response = client.get(f"/products?{query}")
        assert response.status_code == 422, query
        assert response.json()["code"] == "validation_error"


def test_get_product_has_etag_and_unknown_is_404(client):
    product = create(client)

    found = client.get(f"/products/{product['id']}")
    missing = client.get("/products/999999")

    assert found.status_code == 200 and found.headers["etag"].startswith('"')
    assert missing.status_code == 404
    assert missing.json()["code"] == "product_not_found"
    assert missing.json()["product_id"] == 999999


def test_put_and_patch_change_only_the_fields_sent(client, db: Db):
    product = create(client, name="Mug", price="5.00", stock=3)

    put = client.put(f"/products/{product['id']}", json={"price": 6})
    patch = client.patch(f"/products/{product['id']}", json={"description": "Blue"})

    assert put.status_code == 200 and put.json()["price"] == "6.00"
    assert patch.json()["description"] == "Blue"
    stored = product_row(db, product["id"])
    assert (stored.name, stored.price_cents, stored.on_hand, stored.description) == (
        "Mug",
        600,
        3,
        "Blue",
    )


def test_update_honours_if_match(client, db: Db):
    product = create(client, name="Mug")
    etag = client.get(f"/products/{product['id']}").headers["etag"]

    first = client.patch(
        f"/products/{product['id']}", json={"name": "A"}, headers={"If-Match": etag}
    )
    stale = client.patch(
        f"/products/{product['id']}", json={"name": "B"}, headers={"If-Match": etag}
    )

    assert first.status_code == 200 and first.headers["etag"] != etag
    assert stale.status_code == 412 and stale.json()["code"] == "precondition_failed"
    assert product_row(db, product["id"]).name == "A"


def test_update_errors(client):
    one, two = create(client, sku="ONE"), create(client, sku="TWO")

    taken = client.patch(f"/products/{two['id']}", json={"sku": "ONE"})
    missing = client.put("/products/999999", json={"name": "x"})
    null_name = client.patch(f"/products/{one['id']}", json={"name": None})
    unknown = client.patch(f"/products/{one['id']}", json={"colour": "red"})

    assert (taken.status_code, taken.json()["code"]) == (409, "sku_conflict")
    assert (missing.status_code, missing.json()["code"]) == (404, "product_not_found")
    assert (null_name.status_code, null_name.json()["code"]) == (422, "validation_error")
    assert (unknown.status_code, unknown.json()["code"]) == (422, "validation_error")
    assert client.get(f"/products/{two['id']}").json()["sku"] == "TWO"


def test_delete_archives_frees_the_sku_and_keeps_order_snapshots(client, db: Db):
    product = create(client, sku="MUG-1", name="Mug", stock=5)
    order = client.post("/orders", json={"product_id": product["id"], "quantity": 1}).json()

    deleted = client.delete(f"/products/{product['id']}")

    assert deleted.status_code == 204 and deleted.content == b""
    assert client.get(f"/products/{product['id']}").status_code == 404
    assert client.patch(f"/products/{product['id']}", json={"name": "x"}).status_code == 404
    assert client.delete(f"/products/{product['id']}").status_code == 404
    assert client.get("/products").json()["total"] == 0
    again = client.post("/orders", json={"product_id": product["id"], "quantity": 1})
    assert (again.status_code, again.json()["code"]) == (404, "product_not_found")
    assert client.get(f"/orders/{order['id']}").json()["items"][0]["name"] == "Mug"
    assert client.post("/products", json=product_body(sku="MUG-1")).status_code == 201
    assert product_row(db, product["id"]).archived_at is not None


@pytest.mark.parametrize(
    "name",
    [
        "\u200b",  # zero-width space
        "\u200b\u200c\u200d\u2060\ufeff",  # zero-width joiners, word joiner, BOM
        " \u200b \u00ad ",  # spaces around a zero-width space and a soft hyphen
        "\u202e\u202c",  # bidi overrides
        "\u3164\u115f",  # Hangul fillers
        "\u2800",  # blank Braille pattern
        "\ufe0f\u034f",  # a variation selector, the combining grapheme joiner
        "\U000e0041\U000e007f",  # tag characters
    ],
)
def test_a_name_of_invisible_characters_only_is_422_and_stores_nothing(client, db: Db, name):
    created = client.post("/products", json=product_body(name=name))
    product = create(client, name="Mug")
    updated = client.patch(f"/products/{product['id']}", json={"name": name})

    for response in (created, updated):
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "validation_error"
        assert "name" in response.json()["errors"][0]["loc"]
    assert db.value("SELECT count(*) FROM products") == 1
    assert client.get(f"/products/{product['id']}").json()["name"] == "Mug"


def test_a_name_with_invisible_characters_among_visible_ones_is_kept_as_sent(client):
    assert create(client, name="Mug\u200b \ufe0f")["name"] == "Mug\u200b \ufe0f"
    assert create(client, name="\u0600")["name"] == "\u0600"  # drawn: the Arabic number sign


@pytest.mark.parametrize(
    "name, q",
    [
        ("Éclair au café", "ÉCLAIR"),
        ("ÉCLAIR", "éclair"),
        ("Müsli", "MÜSLI"),
        ("Чашка", "чАШКА"),
        ("Κούπα", "ΚΟΎΠΑ"),
    ],
)
def test_q_is_case_insensitive_beyond_ascii(client, name: str, q: str):
    wanted = create(client, name=name)
    create(client, name="Mug")

    found = client.get("/products", params={"q": q}).json()
    by_cursor = client.get("/products", params={"q": q, "limit": 1}).json()

    assert [p["id"] for p in found["items"]] == [wanted["id"]] and found["total"] == 1
    assert [p["id"] for p in by_cursor["items"]] == [wanted["id"]]


# ------------------------------------------------------------------ the three quantities


def _pay(client: TestClient, product_id: int, quantity: int) -> dict:
    order = client.post("/orders", json={"product_id": product_id, "quantity": quantity})
    assert order.status_code == 201, order.text
    return order.json()


def _quantities(body: dict) -> tuple[int, int, int, int]:
    return body["on_hand"], body["committed"], body["available"], body["stock"]


@pytest.mark.parametrize("field", ["on_hand", "stock"])
def test_create_with_on_hand_or_stock_opens_on_hand(client, db: Db, field):
    body = product_body()
    del body["stock"]
    body[field] = 7

    response = client.post("/products", json=body)

    assert response.status_code == 201, response.text
    assert _quantities(response.json()) == (7, 0, 7, 7)
    assert (product_row(db, response.json()["id"]).on_hand) == 7
    (initial,) = client.get(f"/products/{response.json()['id']}/stock-movements").json()["items"]
    assert (initial["reason"], initial["on_hand_delta"], initial["committed_delta"]) == (
        "initial",
        7,
        0,
    )


def test_a_product_shows_on_hand_committed_and_available(client):
    product = create(client, stock=10)
    _pay(client, product["id"], 3)

    shown = client.get(f"/products/{product['id']}").json()

    assert _quantities(shown) == (10, 3, 7, 7)
    listed = client.get("/products", params={"sku": product["sku"]}).json()["items"]
    assert listed == [shown]


def test_patch_stock_sets_available_and_on_hand_sets_on_hand(client, db: Db):
    product = create(client, stock=10)
    _pay(client, product["id"], 3)

    by_stock = client.patch(f"/products/{product['id']}", json={"stock": 20})

    assert by_stock.status_code == 200, by_stock.text
    assert _quantities(by_stock.json()) == (23, 3, 20, 20)  # on_hand = stock + committed
    by_on_hand = client.patch(f"/products/{product['id']}", json={"on_hand": 5})
    assert by_on_hand.status_code == 200, by_on_hand.text
    assert _quantities(by_on_hand.json()) == (5, 3, 2, 2)
    put = client.put(f"/products/{product['id']}", json={"on_hand": 2})
    assert _quantities(put.json()) == (2, 3, -1, -1)  # a set may find fewer than promised
    sets = client.get(
        f"/products/{product['id']}/stock-movements", params={"reason": "stock_set"}
    ).json()["items"]
    assert [(m["on_hand_delta"], m["committed_delta"], m["on_hand_after"]) for m in sets] == [
        (-3, 0, 2),
        (-18, 0, 5),
        (13, 0, 23),
    ]
    stored = product_row(db, product["id"])
    assert (stored.on_hand, stored.committed) == (2, 3)


@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_stock_and_on_hand_together_is_422(client, method):
    product = create(client, stock=4)
    if method == "post":
        response = client.post("/products", json=product_body(stock=3, on_hand=3))
    else:
        response = client.request(
            method.upper(), f"/products/{product['id']}", json={"stock": 3, "on_hand": 3}
        )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert _quantities(client.get(f"/products/{product['id']}").json()) == (4, 0, 4, 4)


@pytest.mark.parametrize(
    "body",
    [
        {"on_hand": -1},
        {"on_hand": 2_147_483_648},
        {"on_hand": None},
        {"committed": 1},
        {"available": 3},
    ],
)
def test_bad_quantities_are_422(client, body):
    product = create(client, stock=4)
    response = client.patch(f"/products/{product['id']}", json=body)
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")


def test_in_stock_false_lists_products_with_available_at_or_below_zero(client):
    plenty = create(client, stock=5)
    promised = create(client, stock=2)
    _pay(client, promised["id"], 2)  # on_hand 2, available 0
    short = create(client, stock=3)
    _pay(client, short["id"], 3)
    client.post(f"/products/{short['id']}/stock-adjustments", json={"delta": -2, "reason": "lost"})
    empty = create(client, stock=0)

    out = {p["id"] for p in client.get("/products", params={"in_stock": "false"}).json()["items"]}
    in_ = {p["id"] for p in client.get("/products", params={"in_stock": "true"}).json()["items"]}

    assert out == {promised["id"], short["id"], empty["id"]}
    assert in_ == {plenty["id"]}
    assert client.get(f"/products/{short['id']}").json()["available"] == -2
