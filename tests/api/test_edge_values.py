"""Values at the edges of what a client may send, each answered with a result or a 4xx problem,
never a 500 (both engines unless said)."""

import pytest

from tests.factories import product_body

EARLIEST = "0001-01-01T00:00:00+01:00"  # before 0001-01-01 in UTC
LATEST = "9999-12-31T23:30:00-01:00"  # past 9999-12-31 in UTC


def order_ids(client, **params: str) -> list[int]:
    response = client.get("/orders", params=params)
    assert response.status_code == 200, response.text
    return [order["id"] for order in response.json()["items"]]


@pytest.mark.parametrize("moment", [EARLIEST, LATEST, "0001-01-01T00:00:00Z"])
def test_created_filters_at_the_ends_of_the_calendar_work(client, moment):
    product = client.post("/products", json=product_body(stock=5)).json()
    order = client.post("/orders", json={"product_id": product["id"], "quantity": 1}).json()
    early = moment != LATEST

    assert order_ids(client, created_after=moment) == ([order["id"]] if early else [])
    assert order_ids(client, created_before=moment) == ([] if early else [order["id"]])
