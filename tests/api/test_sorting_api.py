"""Sorted lists over HTTP: every sort of GET /products and GET /orders in both directions, ties
broken by id in the same direction, paging by offset and by cursor through the whole list under
each sort, and cursors refused under another sort or other filters."""

from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.factories import Db, product_body

NAMES = ["beta", "alpha", "beta", "gamma", "alpha", "delta", "beta", "alpha", "gamma"]
PRICES = ["5.00", "3.00", "5.00", "1.00", "3.00", "5.00", "2.00", "3.00", "1.00"]
STOCKS = [0, 2, 2, 7, 0, 2, 1, 7, 2]
# Three distinct times, each shared by several products (ties at the microsecond).
TIMES = ["2026-11-27 09:00:00.000001", "2026-11-27 08:00:00.5", "2026-11-27 10:00:00"]
PRODUCT_KEYS = {
    "id": lambda item: item["id"],
    "name": lambda item: item["name"],
    "price": lambda item: Decimal(item["price"]),
    "available": lambda item: item["available"],
    "updated_at": lambda item: item["updated_at"],
}
ORDER_KEYS = {
    "created_at": lambda item: item["created_at"],
    "total": lambda item: Decimal(item["total"]),
    "updated_at": lambda item: item["updated_at"],
}


def _set_times(db: Db, table: str, column: str, ids: list[int]) -> None:
    from datetime import UTC, datetime

    for index, row_id in enumerate(ids):
        moment = datetime.fromisoformat(TIMES[index % len(TIMES)]).replace(tzinfo=UTC)
        db.execute(f"UPDATE {table} SET {column} = :at WHERE id = :id", at=moment, id=row_id)


@pytest.fixture
def catalog(client: TestClient, db: Db) -> list[dict[str, Any]]:
    """Nine live products with ties in every sort key, and one archived (never listed)."""
    ids = []
    for name, price, stock in zip(NAMES, PRICES, STOCKS, strict=True):
        body = product_body(name=name, price=price, stock=stock)
        ids.append(client.post("/products", json=body).json()["id"])
    archived = client.post("/products", json=product_body(name="alpha", stock=3)).json()["id"]
    assert client.delete(f"/products/{archived}").status_code == 204
    _set_times(db, "products", "updated_at", ids)
    return [client.get(f"/products/{product_id}").json() for product_id in ids]


def expected(items: list[dict[str, Any]], key: Any, descending: bool) -> list[int]:
    """Ids in (key, id) order, or the exact reverse: ties by id in the sort's direction."""
    ordered = sorted(items, key=lambda item: (key(item), item["id"]), reverse=descending)
    return [item["id"] for item in ordered]


def page_by_offset(client: TestClient, path: str, params: dict[str, Any]) -> list[int]:
    ids: list[int] = []
    while True:
        body = client.get(path, params={**params, "limit": 2, "offset": len(ids)}).json()
        if not body["items"]:
            return ids
        ids += [item["id"] for item in body["items"]]


def page_by_cursor(client: TestClient, path: str, params: dict[str, Any]) -> list[int]:
    response = client.get(path, params={**params, "limit": 2})
    ids = [item["id"] for item in response.json()["items"]]
    while (cursor := response.json()["next"]) is not None:
        response = client.get(path, params={**params, "limit": 2, "after": cursor})
        assert response.status_code == 200, response.text
        assert response.json()["total"] is None
        ids += [item["id"] for item in response.json()["items"]]
    return ids


@pytest.mark.parametrize("descending", [False, True], ids=["ascending", "descending"])
@pytest.mark.parametrize("field", list(PRODUCT_KEYS))
def test_products_sort_with_ties_by_id_and_every_row_once_in_both_paging_modes(
    client: TestClient, catalog: list[dict[str, Any]], field: str, descending: bool
):
    sort = f"-{field}" if descending else field
    want = expected(catalog, PRODUCT_KEYS[field], descending)

    whole = client.get("/products", params={"sort": sort, "limit": 100}).json()

    assert [item["id"] for item in whole["items"]] == want and whole["total"] == len(want)
    assert page_by_offset(client, "/products", {"sort": sort}) == want
    assert page_by_cursor(client, "/products", {"sort": sort}) == want


@pytest.mark.parametrize("sort", ["price", "-available", "name"])
def test_products_sort_with_filters_pages_through_the_matches_once(
    client: TestClient, catalog: list[dict[str, Any]], sort: str
):
    field = sort.lstrip("-")
    matches = [item for item in catalog if item["available"] > 0]
    want = expected(matches, PRODUCT_KEYS[field], sort.startswith("-"))
    params = {"sort": sort, "in_stock": "true"}

    assert page_by_offset(client, "/products", params) == want
    assert page_by_cursor(client, "/products", params) == want


def test_products_default_sort_is_id(client: TestClient, catalog: list[dict[str, Any]]):
    listed = client.get("/products", params={"limit": 100}).json()["items"]

    assert [item["id"] for item in listed] == sorted(item["id"] for item in catalog)


@pytest.fixture
def shop(client: TestClient, db: Db) -> list[dict[str, Any]]:
    """Nine orders with ties in total, created_at and updated_at."""
    cheap = client.post("/products", json=product_body(price="2.00", stock=1000)).json()["id"]
    dear = client.post("/products", json=product_body(price="7.00", stock=1000)).json()["id"]
    ids = []
    for index in range(9):
        line = {"product_id": dear if index % 3 == 0 else cheap, "quantity": 1 + index % 2}
        ids.append(client.post("/orders", json=line).json()["id"])
    _set_times(db, "orders", "created_at", ids)
    _set_times(db, "orders", "updated_at", ids[::-1])
    return [client.get(f"/orders/{order_id}").json() for order_id in ids]


@pytest.mark.parametrize("descending", [False, True], ids=["ascending", "descending"])
@pytest.mark.parametrize("field", list(ORDER_KEYS))
def test_orders_sort_with_ties_by_id_and_every_row_once_in_both_paging_modes(
    client: TestClient, shop: list[dict[str, Any]], field: str, descending: bool
):
    sort = f"-{field}" if descending else field
    want = expected(shop, ORDER_KEYS[field], descending)

    whole = client.get("/orders", params={"sort": sort, "limit": 100}).json()

    assert [item["id"] for item in whole["items"]] == want and whole["total"] == len(want)
    assert page_by_offset(client, "/orders", {"sort": sort}) == want
    assert page_by_cursor(client, "/orders", {"sort": sort}) == want


def test_orders_default_sort_is_newest_created_first(
    client: TestClient, shop: list[dict[str, Any]]
):
    listed = client.get("/orders", params={"limit": 100}).json()["items"]
    want = expected(shop, ORDER_KEYS["created_at"], True)

    assert [item["id"] for item in listed] == want
    assert page_by_cursor(client, "/orders", {}) == want


def test_orders_sort_with_a_status_filter_pages_through_the_matches_once(
    client: TestClient, shop: list[dict[str, Any]]
):
    for order in shop[:4]:
        client.delete(f"/orders/{order['id']}")
    pending = shop[4:]
    params = {"sort": "-total", "status": "PENDING"}
    want = expected(pending, ORDER_KEYS["total"], True)

    assert page_by_offset(client, "/orders", params) == want
    assert page_by_cursor(client, "/orders", params) == want


@pytest.mark.parametrize(
    ("path", "sort"),
    [("/products", "colour"), ("/products", "-"), ("/products", "--id"), ("/orders", "id")],
)
def test_an_unknown_sort_is_422_at_the_sort_parameter(client: TestClient, path: str, sort: str):
    response = client.get(path, params={"sort": sort})

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert [error["loc"] for error in body["errors"]] == [["query", "sort"]]


def _cursor(client: TestClient, path: str, params: dict[str, Any]) -> str:
    cursor = client.get(path, params={**params, "limit": 1}).json()["next"]
    assert cursor is not None
    return cursor


@pytest.mark.parametrize(
    ("path", "issued", "used"),
    [
        ("/products", {"sort": "name"}, {"sort": "price"}),
        ("/products", {"sort": "name"}, {"sort": "-name"}),
        ("/products", {}, {"sort": "name"}),
        ("/products", {"sort": "price", "in_stock": "true"}, {"sort": "price"}),
        ("/products", {"q": "a"}, {"q": "b"}),
        ("/orders", {}, {"sort": "total"}),
        ("/orders", {"status": "PENDING"}, {}),
        ("/orders", {"sort": "-total"}, {"sort": "-total", "status": "PENDING"}),
    ],
)
def test_a_cursor_under_another_sort_or_other_filters_is_422_invalid_cursor(
    client: TestClient,
    catalog: list[dict[str, Any]],
    shop: list[dict[str, Any]],
    path: str,
    issued: dict[str, Any],
    used: dict[str, Any],
):
    cursor = _cursor(client, path, issued)

    response = client.get(path, params={**used, "after": cursor})

    assert response.status_code == 422
    assert response.json()["code"] == "invalid_cursor"
    assert client.get(path, params={**issued, "after": cursor}).status_code == 200


def test_a_cursor_of_another_list_or_mangled_is_422_invalid_cursor(
    client: TestClient, catalog: list[dict[str, Any]], shop: list[dict[str, Any]]
):
    from app.core import cursors

    product_cursor = _cursor(client, "/products", {"sort": "name"})
    order_cursor = _cursor(client, "/orders", {})
    forged = [
        cursors.encode_keyed("products", ["0" * 16, "alpha", 1]),
        cursors.encode_keyed("products", [product_cursor, 1]),
        cursors.encode("products", 3),
        product_cursor[:-3],
        "x" * 2000,
    ]

    assert client.get("/orders", params={"after": product_cursor}).status_code == 422
    assert client.get("/products", params={"after": order_cursor}).status_code == 422
    for cursor in forged:
        response = client.get("/products", params={"sort": "name", "after": cursor})
        assert response.status_code == 422, cursor
        assert response.json()["code"] == "invalid_cursor"


def test_a_cursor_carrying_a_key_of_the_wrong_type_is_422(
    client: TestClient, catalog: list[dict[str, Any]]
):
    import base64

    import orjson

    cursor = _cursor(client, "/products", {"sort": "updated_at"})
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    binding, _, row_id = orjson.loads(raw.partition(b":")[2])
    for key in ("not a time", 12, None):
        forged = base64.urlsafe_b64encode(
            b"products:" + orjson.dumps([binding, key, row_id])
        ).decode()
        response = client.get("/products", params={"sort": "updated_at", "after": forged})
        assert response.status_code == 422 and response.json()["code"] == "invalid_cursor"


def test_a_name_of_200_characters_beyond_ascii_fits_its_cursor(client: TestClient):
    for _ in range(2):
        client.post("/products", json=product_body(name="Ж" * 200))

    first = client.get("/products", params={"sort": "-name", "limit": 1}).json()
    second = client.get("/products", params={"sort": "-name", "limit": 1, "after": first["next"]})

    assert second.status_code == 200
    assert second.json()["items"][0]["id"] < first["items"][0]["id"]


def test_q_matches_a_substring_of_the_sku_or_the_name_case_insensitively(client: TestClient):
    by_sku = client.post("/products", json=product_body(sku="MUG-RED-1", name="Cup")).json()
    by_name = client.post("/products", json=product_body(sku="X-1", name="Red mug")).json()
    client.post("/products", json=product_body(sku="TEE-1", name="Shirt"))

    found = client.get("/products", params={"q": "mug", "sort": "-id"}).json()
    only_sku = client.get("/products", params={"q": "g-rEd"}).json()

    assert [item["id"] for item in found["items"]] == [by_name["id"], by_sku["id"]]
    assert found["total"] == 2
    assert [item["id"] for item in only_sku["items"]] == [by_sku["id"]]
