"""Every JSON response the in-process service sends is checked against its route's model
(tests/support/response_shapes.py, hooked into every API test's client, on both engines). These
tests show that the check can fail: a view that gains or loses a field, or a problem titled
otherwise than its code, is refused."""

from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from app import orders, products
from tests.support.factories import product_body
from tests.support.response_shapes import WITHOUT_MODEL, ShapeError, model_of


def _product(client: TestClient) -> dict[str, Any]:
    response = client.post("/products", json=product_body(sku="SHAPE-1", stock=5))
    assert response.status_code == 201
    return response.json()


def test_a_product_view_with_a_field_more_is_refused(client: TestClient, monkeypatch):
    made = _product(client)
    view = products.product_view
    monkeypatch.setattr(products, "product_view", lambda row: {**view(row), "colour": "red"})
    with pytest.raises(ShapeError, match="colour"):
        client.get(f"/products/{made['id']}")


def test_a_product_view_with_a_field_less_is_refused(client: TestClient, monkeypatch):
    made = _product(client)
    view = products.product_view

    def without_stock(row: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in view(row).items() if key != "stock"}

    monkeypatch.setattr(products, "product_view", without_stock)
    with pytest.raises(ShapeError, match="stock"):
        client.get(f"/products/{made['id']}")


def test_a_view_in_another_key_order_is_refused(client: TestClient, monkeypatch):
    made = _product(client)
    order = client.post("/orders", json={"product_id": made["id"], "quantity": 1}).json()
    views = orders._views

    def reordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"status": view["status"], **view} for view in views(rows)]

    monkeypatch.setattr(orders, "_views", reordered)
    with pytest.raises(ShapeError, match="keys"):
        client.get(f"/orders/{order['id']}")


def test_a_problem_titled_otherwise_than_its_code_is_refused(client: TestClient, monkeypatch):
    from app.core import errors

    body = errors.problem_body

    def retitled(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {**body(*args, **kwargs), "title": "Something else"}

    monkeypatch.setattr(errors, "problem_body", retitled)
    with pytest.raises(ShapeError, match="product_not_found"):
        client.get("/products/999999")


def test_every_route_that_answers_json_declares_its_model(client: TestClient):
    routes = [
        route
        for route in client.app.router.routes  # type: ignore[attr-defined]
        if isinstance(route, APIRoute)
        and route.include_in_schema
        and route.path not in WITHOUT_MODEL
    ]
    assert routes
    for route in routes:
        content = route.responses.get(200, {}).get("content", {})
        if route.status_code == 204 or (content and "application/json" not in content):
            continue  # no body, or not JSON (/metrics is Prometheus text)
        assert model_of(route, route.status_code or 200) is not None, route.path
