"""Catalog import and export over HTTP, on both engines: CSV and NDJSON, dry runs, all or
nothing with every row's errors, 415 and 413, If-Match against the catalog's version,
Idempotency-Key replays, the movements and events an import records, and an export that
imports again unchanged."""

import json
import time

import pytest
from fastapi.testclient import TestClient

from app.catalog_formats import MAX_ROWS
from app.db.base import Connection, Sql
from app.main import create_app
from tests.api.test_payment_window import run
from tests.support.factories import product_body
from tests.support.serving import serving

CSV = {"Content-Type": "text/csv"}
NDJSON = {"Content-Type": "application/x-ndjson"}


def ndjson(*rows: dict) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def new_product(client: TestClient, **fields) -> dict:
    response = client.post("/products", json=product_body(**fields))
    assert response.status_code == 201, response.text
    return response.json()


def import_(client: TestClient, body: str | bytes, headers: dict, **params):
    return client.post("/products/import", content=body, headers=headers, params=params)


def events(client: TestClient, *types: str, at_least: int = 0) -> list[dict]:
    """The feed's events of these types, once there are `at_least` (a transaction open
    elsewhere on a PostgreSQL server holds new events back until it ends)."""
    deadline = time.monotonic() + 30
    while True:
        response = client.get("/events", params={"type": list(types), "limit": 100})
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        if len(items) >= at_least or time.monotonic() > deadline:
            return items
        time.sleep(0.05)


async def _count(conn: Connection, table: str) -> int:
    return await conn.fetch_value(Sql(f"SELECT count(*) FROM {table}"))


def recorded(client: TestClient) -> tuple[int, int]:
    """How many events and movements are stored, whatever the feed shows yet."""
    return run(client, _count, "events"), run(client, _count, "stock_movements")


def by_sku(client: TestClient, sku: str) -> dict | None:
    items = client.get("/products", params={"sku": sku}).json()["items"]
    return items[0] if items else None


def test_csv_import_creates_and_updates_by_sku_leaving_empty_cells_alone(client):
    kept = new_product(client, sku="MUG-1", name="Mug", price="12.50", stock=5)
    body = (
        "sku,name,description,price,on_hand,low_stock_threshold\n"
        "MUG-1,,,14.00,,3\n"
        "TEE-1,T-shirt,Cotton,19.99,40,\n"
    )

    response = import_(client, body, CSV)

    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["created"], report["updated"], report["unchanged"]) == (1, 1, 0)
    assert report["errors"] == []
    mug = client.get(f"/products/{kept['id']}").json()
    assert (mug["name"], mug["price"], mug["stock"], mug["low_stock_threshold"]) == (
        "Mug",
        "14.00",
        5,
        3,
    )
    tee = by_sku(client, "TEE-1")
    assert tee is not None
    assert (tee["name"], tee["description"], tee["price"], tee["stock"]) == (
        "T-shirt",
        "Cotton",
        "19.99",
        40,
    )
    assert tee["low_stock_threshold"] is None
    assert report["catalog_version"] == client.get("/products/export").headers["etag"].strip('"')


def test_ndjson_import_sets_on_hand_with_a_movement_and_clears_a_threshold_with_null(client):
    product = new_product(client, sku="MUG-1", stock=5, low_stock_threshold=2)

    response = import_(
        client, ndjson({"sku": "MUG-1", "on_hand": 9, "low_stock_threshold": None}), NDJSON
    )

    assert response.status_code == 200, response.text
    assert response.json()["updated"] == 1
    shown = client.get(f"/products/{product['id']}").json()
    assert (shown["stock"], shown["low_stock_threshold"]) == (9, None)
    movements = client.get(f"/products/{product['id']}/stock-movements").json()["items"]
    assert [(m["reason"], m["delta"], m["stock_after"]) for m in movements] == [
        ("counted", 4, 9),  # on_hand applied as a stock count taken now
        ("initial", 5, 5),
    ]


def test_dry_run_reports_what_would_change_and_writes_nothing(client):
    new_product(client, sku="MUG-1", name="Mug", price="12.50", stock=5)
    new_product(client, sku="CUP-1", name="Cup", price="4.00", stock=1)
    before = client.get("/products/export").content
    body = ndjson(
        {"sku": "MUG-1", "price": "13.00"},
        {"sku": "CUP-1", "name": "Cup"},
        {"sku": "NEW-1", "name": "New", "price": 1},
    )

    response = import_(client, body, NDJSON, dry_run="true")

    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["created"], report["updated"], report["unchanged"]) == (1, 1, 1)
    assert report["errors"] == []
    assert client.get("/products/export").content == before
    assert recorded(client) == (2, 2)  # the two products' creations alone


def test_dry_run_lists_errors_with_the_counts_of_the_valid_rows(client):
    body = ndjson({"sku": "A-1", "name": "A", "price": 1}, {"sku": "B-1", "name": "B"})

    report = import_(client, body, NDJSON, dry_run="true").json()

    assert (report["created"], report["updated"], report["unchanged"]) == (1, 0, 0)
    assert report["errors"] == [
        {"row": 2, "sku": "B-1", "loc": ["price"], "msg": "required for a new SKU"}
    ]


def test_an_invalid_row_refuses_the_whole_import_with_every_rows_errors(client):
    product = new_product(client, sku="MUG-1", name="Mug", price="12.50", stock=5)
    before = client.get("/products/export").content
    body = (
        "sku,name,price,on_hand\n"
        "MUG-1,Mug renamed,-1,\n"  # bad price
        "NEW-1,,5.00,\n"  # a new SKU without a name
        "GOOD-1,Good,3.00,2\n"
        "GOOD-1,Good again,3.00,2\n"  # the SKU twice in the file
    )

    response = import_(client, body, CSV)

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "import_invalid"
    found = [(e["row"], e["sku"], e["loc"]) for e in problem["errors"]]
    assert found == [(2, "MUG-1", ["price"]), (3, "NEW-1", ["name"]), (5, "GOOD-1", ["sku"])]
    assert all(error["msg"] for error in problem["errors"])
    assert client.get("/products/export").content == before
    assert recorded(client) == (1, 1)
    assert client.get(f"/products/{product['id']}").json()["name"] == "Mug"
    assert by_sku(client, "GOOD-1") is None


def test_unknown_columns_and_keys_are_row_errors(client):
    csv_response = import_(client, "sku,name,colour\nA-1,A,red\n", CSV)
    ndjson_response = import_(
        client, ndjson({"sku": "A-1", "name": "A", "price": 1, "colour": "red"}), NDJSON
    )

    assert csv_response.status_code == ndjson_response.status_code == 422
    assert csv_response.json()["errors"][0]["loc"] == ["colour"]
    assert csv_response.json()["errors"][0]["row"] == 1
    assert ndjson_response.json()["errors"] == [
        {"row": 1, "sku": "A-1", "loc": ["colour"], "msg": "Extra inputs are not permitted"}
    ]


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_a_body_neither_csv_nor_ndjson_is_415(client, content_type):
    headers = {} if content_type is None else {"Content-Type": content_type}

    response = import_(client, '{"sku": "A-1"}', headers)

    assert response.status_code == 415, response.text
    assert response.json()["code"] == "unsupported_media_type"


def test_more_rows_than_the_limit_is_413_and_writes_nothing(client):
    body = "sku,name,price\n" + "".join(f"S-{n},Name,1.00\n" for n in range(MAX_ROWS + 1))

    response = import_(client, body, CSV)

    assert response.status_code == 413, response.text
    assert response.json()["code"] == "payload_too_large"
    assert client.get("/products").json()["total"] == 0


def test_if_match_applies_only_while_the_catalog_is_unchanged(client):
    product = new_product(client, sku="MUG-1", name="Mug", price="12.50", stock=5)
    body = ndjson({"sku": "MUG-1", "price": "13.00"})
    preview = import_(client, body, NDJSON, dry_run="true").json()
    # Another change lands between the preview and the apply.
    client.patch(f"/products/{product['id']}", json={"name": "Mug, blue"})

    stale = import_(client, body, {**NDJSON, "If-Match": preview["catalog_version"]})

    assert stale.status_code == 412, stale.text
    assert stale.json()["code"] == "precondition_failed"
    assert client.get(f"/products/{product['id']}").json()["price"] == "12.50"
    current = stale.json()["catalog_version"]
    applied = import_(client, body, {**NDJSON, "If-Match": f'"{current}"'})
    assert applied.status_code == 200, applied.text
    assert client.get(f"/products/{product['id']}").json()["price"] == "13.00"


def test_an_order_changes_the_catalog_version(client):
    product = new_product(client, sku="MUG-1", stock=5)
    before = client.get("/products/export").headers["etag"]

    client.post("/orders", json={"product_id": product["id"], "quantity": 1})

    assert client.get("/products/export").headers["etag"] != before


def test_idempotency_key_replays_the_first_answer(client):
    headers = {**NDJSON, "Idempotency-Key": "import-1"}
    body = ndjson({"sku": "A-1", "name": "A", "price": 1, "on_hand": 3})

    first = import_(client, body, headers)
    again = import_(client, body, headers)
    other = import_(client, ndjson({"sku": "B-1", "name": "B", "price": 1}), headers)

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert client.get("/products").json()["total"] == 1


def test_import_records_the_events_and_movements_of_the_single_calls(client):
    kept = new_product(client, sku="MUG-1", name="Mug", price="12.50", stock=5)
    body = ndjson(
        {"sku": "MUG-1", "name": "Mug, blue", "on_hand": 7},
        {"sku": "TEE-1", "name": "T-shirt", "price": "19.99", "on_hand": 4},
    )

    assert import_(client, body, NDJSON).status_code == 200

    created = events(client, "product.created", at_least=2)
    assert [e["data"]["product"]["sku"] for e in created] == ["MUG-1", "TEE-1"]
    updated = events(client, "product.updated", at_least=1)
    assert [e["data"]["product"]["name"] for e in updated] == ["Mug, blue"]
    adjusted = events(client, "stock.adjusted", at_least=1)
    assert [(e["data"]["product"]["id"], e["data"]["movement"]["delta"]) for e in adjusted] == [
        (kept["id"], 2)
    ]
    tee = by_sku(client, "TEE-1")
    assert tee is not None
    assert created[1]["data"]["product"] == client.get(f"/products/{tee['id']}").json()
    reasons = client.get(f"/products/{tee['id']}/stock-movements").json()["items"]
    assert [(m["reason"], m["delta"]) for m in reasons] == [("initial", 4)]


def test_an_import_that_changes_nothing_records_nothing(client):
    new_product(client, sku="MUG-1", name="Mug", price="12.50", stock=5)
    seen = recorded(client)

    body = ndjson({"sku": "MUG-1", "name": "Mug", "price": 12.5, "on_hand": 5})
    report = import_(client, body, NDJSON).json()

    assert (report["updated"], report["unchanged"]) == (0, 1)
    assert recorded(client) == seen


@pytest.mark.parametrize("format", ["ndjson", "csv"])
def test_an_export_imported_again_is_unchanged_on_every_row(client, format):
    new_product(client, sku="MUG-1", name="Mug", price="12.50", stock=5, low_stock_threshold=2)
    new_product(client, sku="TXT-1", name='Quotes "and", commas', description="Line 1\nLine 2")
    new_product(client, sku="NIL-1", name="Nothing", price="0.01", stock=0)
    archived = new_product(client, sku="OLD-1")
    client.delete(f"/products/{archived['id']}")
    exported = client.get("/products/export", params={"format": format})
    assert exported.status_code == 200

    headers = CSV if format == "csv" else NDJSON
    report = import_(client, exported.content, headers, dry_run="true").json()
    applied = import_(client, exported.content, headers).json()

    assert (report["created"], report["updated"], report["unchanged"]) == (0, 0, 3)
    assert report["errors"] == []
    assert (applied["updated"], applied["unchanged"]) == (0, 3)
    assert applied["catalog_version"] == exported.headers["etag"].strip('"')


def test_export_streams_every_live_product_in_both_formats(client):
    products = [new_product(client, sku=f"S-{n}", stock=n) for n in range(3)]
    client.delete(f"/products/{products[1]['id']}")

    lines = client.get("/products/export").text.splitlines()
    csv_text = client.get("/products/export", params={"format": "csv"})

    records = [json.loads(line) for line in lines]
    assert [r["sku"] for r in records] == ["S-0", "S-2"]
    assert records[1] == {
        "id": products[2]["id"],
        "sku": "S-2",
        "name": products[2]["name"],
        "description": products[2]["description"],
        "price": products[2]["price"],
        "on_hand": 2,
        "committed": 0,
        "available": 2,
        "low_stock_threshold": None,
        "updated_at": products[2]["updated_at"],
    }
    assert csv_text.headers["content-type"].startswith("text/csv")
    header, *rows = csv_text.text.splitlines()
    assert header.split(",") == [
        "id",
        "sku",
        "name",
        "description",
        "price",
        "on_hand",
        "committed",
        "available",
        "low_stock_threshold",
        "updated_at",
    ]
    assert len(rows) == 2
    assert csv_text.headers["etag"] == client.get("/products/export").headers["etag"]


def test_head_of_export_answers_the_etag_and_no_body(client):
    new_product(client, sku="S-1")

    head = client.head("/products/export")

    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == client.get("/products/export").headers["etag"]


def test_import_and_export_are_not_taken_for_product_ids(client):
    assert client.get("/products/export/").status_code == 200
    assert client.post("/products/import/", content="sku\n", headers=CSV).status_code == 200


def test_a_products_life_records_created_updated_and_archived_as_get_showed_it(client):
    product = new_product(client, sku="MUG-1", stock=5)
    renamed = client.patch(f"/products/{product['id']}", json={"name": "Mug, blue"}).json()
    same = client.patch(f"/products/{product['id']}", json={"name": "Mug, blue", "stock": 5})
    client.patch(f"/products/{product['id']}", json={"stock": 7})  # quantities: stock.adjusted
    shown = client.get(f"/products/{product['id']}").json()
    assert client.delete(f"/products/{product['id']}").status_code == 204

    found = events(client, "product.created", "product.updated", "product.archived", at_least=3)

    assert same.status_code == 200 and same.json()["updated_at"] == renamed["updated_at"]
    assert [(e["type"], e["data"]["product"]) for e in found] == [
        ("product.created", product),
        ("product.updated", renamed),
        ("product.archived", shown),
    ]
    assert recorded(client) == (4, 2)  # those three and one stock.adjusted; initial, stock_set


def test_an_import_has_a_byte_limit_of_its_own(settings, engine):
    limits = {"max_body_bytes": 1_000, "import_max_body_bytes": 5_000}
    rows = "".join(f"S-{n},Name {n},1.00\n" for n in range(150))  # ~2,500 bytes
    with serving(create_app(settings.model_copy(update=limits), engine)) as client:
        fits = import_(client, "sku,name,price\n" + rows, CSV, dry_run="true")
        over = import_(client, "sku,name,price\n" + rows * 3, CSV, dry_run="true")
        other = client.post("/products", json=product_body(description="x" * 1_500))

    assert fits.status_code == 200, fits.text
    assert (over.status_code, over.json()["limit"]) == (413, 5_000)
    assert (other.status_code, other.json()["limit"]) == (413, 1_000)
