"""Conditional requests over HTTP: ETags of the bytes sent, 304 for a copy still current (GET and
HEAD), If-Match on order writes and on archiving a product, 412 carrying the current ETag."""

import hashlib

import pytest
from fastapi.testclient import TestClient

from tests.support.factories import Db, product_body, product_row


def _product(client: TestClient) -> dict:
    return client.post("/products", json=product_body(stock=10)).json()


def _order(client: TestClient) -> dict:
    product = _product(client)
    return client.post("/orders", json={"product_id": product["id"], "quantity": 2}).json()


def _path(client: TestClient, kind: str) -> str:
    return (
        f"/products/{_product(client)['id']}"
        if kind == "product"
        else (f"/orders/{_order(client)['id']}")
    )


@pytest.mark.parametrize("kind", ["product", "order"])
def test_a_single_get_carries_a_strong_etag_of_the_bytes_it_sends(client: TestClient, kind: str):
    response = client.get(_path(client, kind))

    tag = response.headers["etag"]
    assert response.status_code == 200
    assert tag == '"' + hashlib.sha256(response.content).hexdigest()[:32] + '"'


@pytest.mark.parametrize("kind", ["product", "order"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_if_none_match_naming_the_etag_is_304_with_the_etag_and_no_body(
    client: TestClient, kind: str, method: str
):
    path = _path(client, kind)
    tag = client.get(path).headers["etag"]

    for header in (tag, "*", f'"other", {tag}', f"W/{tag}"):
        for url in (path, path + "/"):
            response = client.request(method, url, headers={"If-None-Match": header})
            assert response.status_code == 304, (header, url)
            assert response.headers["etag"] == tag and response.content == b""
            assert "content-length" not in response.headers or (
                response.headers["content-length"] == "0"
            )
    other = client.request(method, path, headers={"If-None-Match": '"other"'})
    assert other.status_code == 200 and other.headers["etag"] == tag
    assert (other.content == b"") == (method == "HEAD")


def test_a_changed_product_no_longer_matches_its_old_etag(client: TestClient):
    product = _product(client)
    path = f"/products/{product['id']}"
    tag = client.get(path).headers["etag"]
    changed = client.patch(path, json={"name": "Renamed"})

    response = client.get(path, headers={"If-None-Match": tag})

    assert response.status_code == 200 and response.json()["name"] == "Renamed"
    assert response.headers["etag"] == changed.headers["etag"] != tag


def test_an_order_whose_status_moved_no_longer_matches_its_old_etag(client: TestClient):
    order = _order(client)
    path = f"/orders/{order['id']}"
    tag = client.get(path).headers["etag"]
    client.patch(path, json={"status": "PAID"})

    response = client.get(path, headers={"If-None-Match": tag})

    assert response.status_code == 200 and response.json()["status"] == "PAID"


@pytest.mark.parametrize(
    ("method", "body"),
    [("PUT", {"status": "PAID"}), ("PATCH", {"status": "PAID"}), ("DELETE", None)],
)
def test_if_match_on_an_order_write_applies_only_while_the_etag_matches(
    client: TestClient, db: Db, method: str, body: dict | None
):
    order = _order(client)
    path = f"/orders/{order['id']}"
    tag = client.get(path).headers["etag"]
    stock = db.value(
        "SELECT committed FROM products WHERE id = :id", id=order["items"][0]["product_id"]
    )

    stale = client.request(method, path, json=body, headers={"If-Match": '"stale"'})

    assert stale.status_code == 412
    problem = stale.json()
    assert problem["code"] == "precondition_failed" and problem["etag"] == tag
    assert client.get(path).json()["status"] == "PENDING"
    assert (
        db.value(
            "SELECT committed FROM products WHERE id = :id", id=order["items"][0]["product_id"]
        )
        == stock
    )

    applied = client.request(method, path, json=body, headers={"If-Match": tag})

    assert applied.status_code == 200
    assert applied.json()["status"] in ("PAID", "CANCELED")
    assert applied.headers["etag"] == client.get(path).headers["etag"] != tag
    again = client.request(method, path, json=body, headers={"If-Match": tag})
    assert again.status_code == 412 and again.json()["etag"] == applied.headers["etag"]


def test_if_match_star_or_a_list_naming_the_etag_applies(client: TestClient):
    first, second = _order(client), _order(client)
    tag = client.get(f"/orders/{second['id']}").headers["etag"]

    star = client.patch(
        f"/orders/{first['id']}", json={"status": "PAID"}, headers={"If-Match": "*"}
    )
    listed = client.patch(
        f"/orders/{second['id']}", json={"status": "PAID"}, headers={"If-Match": f'"x", {tag}'}
    )

    assert star.status_code == 200 and listed.status_code == 200


def test_if_match_on_archiving_a_product(client: TestClient, db: Db):
    product = _product(client)
    path = f"/products/{product['id']}"
    tag = client.get(path).headers["etag"]

    stale = client.delete(path, headers={"If-Match": '"stale"'})

    assert stale.status_code == 412 and stale.json()["etag"] == tag
    assert product_row(db, product["id"]).archived_at is None
    assert client.delete(path, headers={"If-Match": tag}).status_code == 204
    assert product_row(db, product["id"]).archived_at is not None
    assert client.delete(path, headers={"If-Match": tag}).status_code == 404


def test_a_shipment_carries_an_etag_and_answers_304(client: TestClient):
    order = _order(client)
    assert client.put(f"/orders/{order['id']}", json={"status": "PAID"}).status_code == 200
    shipped = client.post(f"/orders/{order['id']}/shipments", json={})
    assert shipped.status_code == 201, shipped.text
    path = shipped.headers["location"]
    tag = client.get(path).headers["etag"]

    again = client.get(path, headers={"If-None-Match": tag})
    head = client.head(path, headers={"If-None-Match": tag})

    assert again.status_code == head.status_code == 304 and again.content == b""
    assert again.headers["etag"] == head.headers["etag"] == tag
