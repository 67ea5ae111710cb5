"""Edge cases schemathesis found against the live service, pinned down as plain API tests.

Each one was a 500, a schema-valid request rejected, a schema-violating request accepted, or
an answer the OpenAPI document did not declare (see README, "Testing": schemathesis).
"""

import pytest
from fastapi.testclient import TestClient

from tests.support.factories import product_body

pytestmark = pytest.mark.usefixtures("db_kind")


def test_405_lists_every_method_of_the_path_in_allow(client: TestClient) -> None:
    response = client.request("OPTIONS", "/products")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.json()["code"] == "method_not_allowed"
    response = client.request("TRACE", "/orders/1")
    assert response.headers["allow"] == "DELETE, GET, PATCH, PUT"


@pytest.mark.parametrize("price", ["1e1", " 12.50", "12.50 ", "1_0", "+3", "12.", "١٢", ""])
def test_price_strings_must_be_plain_digits(client: TestClient, price: str) -> None:
    response = client.post("/products", json=product_body(price=price))
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"][-1] == "price"
    assert client.get("/products").json()["total"] == 0


@pytest.mark.parametrize(("price", "stored"), [("12.50", "12.50"), ("7", "7.00"), (0.57, "0.57")])
def test_plain_prices_are_accepted(client: TestClient, price: object, stored: str) -> None:
    response = client.post("/products", json=product_body(price=price))
    assert response.status_code == 201, response.text
    assert response.json()["price"] == stored


def test_whole_floats_are_integers_but_strings_and_booleans_are_not(client: TestClient) -> None:
    product = client.post("/products", json=product_body(stock=5.0))
    assert product.status_code == 201 and product.json()["stock"] == 5
    for stock in ("5", True, 5.5):
        assert client.post("/products", json=product_body(stock=stock)).status_code == 422
    order = client.post(
        "/orders", json={"product_id": float(product.json()["id"]), "quantity": 2.0}
    )
    assert order.status_code == 201, order.text
    assert order.json()["items"][0]["quantity"] == 2


def test_same_product_twice_as_int_and_float_is_one_product(client: TestClient) -> None:
    product_id = client.post("/products", json=product_body()).json()["id"]
    lines = [
        {"product_id": product_id, "quantity": 1},
        {"product_id": float(product_id), "quantity": 1},
    ]
    response = client.post("/orders", json={"items": lines})
    assert response.status_code == 422
    assert client.get(f"/products/{product_id}").json()["stock"] == 10


@pytest.mark.parametrize("name", ["\t", "\u3000\u2003", "bad\x00name", "\f" + "x" * 200])
def test_names_not_all_space_no_nul_at_most_200_as_sent(client: TestClient, name: str) -> None:
    response = client.post("/products", json=product_body(name=name))
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"][-1] == "name"


def test_names_are_stored_trimmed(client: TestClient) -> None:
    response = client.post("/products", json=product_body(name="\u3000 Coffee mug \t"))
    assert response.status_code == 201
    assert response.json()["name"] == "Coffee mug"


def test_nul_in_description_or_filters_is_422_not_500(client: TestClient) -> None:
    assert client.post("/products", json=product_body(description="a\x00b")).status_code == 422
    assert client.get("/products", params={"q": "mu\x00g"}).status_code == 422
    assert client.get("/products", params={"sku": "SKU\x00"}).status_code == 422
    assert client.get("/products", params={"sku": "SKU-1", "q": "mug"}).status_code == 200


def test_product_update_schema_does_not_offer_null_for_required_fields(
    client: TestClient,
) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["ProductUpdate"]
    for field in ("sku", "name", "price", "stock"):
        assert "null" not in str(schema["properties"][field]), field
    assert {"type": "null"} in schema["properties"]["description"]["anyOf"]
    product_id = client.post("/products", json=product_body()).json()["id"]
    assert client.patch(f"/products/{product_id}", json={"price": None}).status_code == 422


def test_operations_with_a_body_declare_400_for_malformed_json(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    with_body = [
        (path, method)
        for path, item in paths.items()
        for method, operation in item.items()
        if "requestBody" in operation
    ]
    assert ("/orders/{order_id}", "put") in with_body
    for path, method in with_body:
        assert "400" in paths[path][method]["responses"], (method, path)
    response = client.put(
        "/orders/1", content=b"\x00", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["code"] == "bad_request"


def test_blank_names_say_so_and_lone_surrogates_are_422(client: TestClient) -> None:
    problem = client.post("/products", json=product_body(name=" \t ")).json()
    assert problem["errors"][0]["msg"] == "Value error, must not be blank"
    body = b'{"sku": "S-1", "name": "\\ud800", "price": "1.00"}'  # not encodable as UTF-8
    response = client.post("/products", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert client.get("/products").json()["total"] == 0
