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
