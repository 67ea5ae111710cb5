"""A view's fields are its model's (app/db/views.py): the mapping that makes them is checked
against the model at import, and the SQL and the dict built from it follow the model's order."""

import pytest
from pydantic import BaseModel

from app import orders, products
from app.db.views import Column, Money, Time, View, json_object
from app.schemas import OrderLinePublic, OrderPublic, ProductPublic


class Thing(BaseModel):
    id: int
    price: str
    created_at: str


MADE = {"id": Column("t.id"), "price": Money("t.price_cents"), "created_at": Time("t.made")}


def test_a_field_without_its_making_or_a_making_without_its_field_raises():
    with pytest.raises(TypeError, match=r"without a making: \['created_at'\]"):
        View(Thing, {"id": MADE["id"], "price": MADE["price"]})
    with pytest.raises(TypeError, match=r"not in the model: \['colour'\]"):
        View(Thing, {**MADE, "colour": Column("t.colour")})
    with pytest.raises(TypeError, match="without a making"):
        json_object(Thing, {"id": "t.id"})


def test_select_json_and_dict_follow_the_models_order():
    view = View(Thing, {"created_at": MADE["created_at"], "price": MADE["price"], "id": MADE["id"]})
    assert view.fields == ("id", "price", "created_at")
    assert view.select("sqlite").startswith("t.id, t.price_cents, ")
    assert view.select("sqlite").endswith(" AS created_at")
    assert view.json_object("sqlite").startswith("json_object('id', t.id, 'price', ")
    shown = view.of({"id": 3, "price_cents": 1250, "created_at": "2026-01-01T00:00:00Z"})
    assert shown == {"id": 3, "price": "12.50", "created_at": "2026-01-01T00:00:00Z"}
    assert list(shown) == ["id", "price", "created_at"]


def test_the_services_views_are_their_models_fields():
    assert products.PRODUCT.fields == tuple(ProductPublic.model_fields)
    assert orders.ORDER.fields == tuple(OrderPublic.model_fields)
    assert orders.LINE.fields == tuple(OrderLinePublic.model_fields)
