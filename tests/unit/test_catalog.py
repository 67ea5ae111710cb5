"""The catalog's rules through the seam."""

import orjson
import pytest

from app import products
from app.core import etags
from app.core.errors import ApiError
from app.schemas import ProductUpdate
from tests.support.factories import Db, make_order, make_product, product_row


def shown(page: dict) -> list[dict]:
    """A page's items as a client reads them (the database wrote each one's JSON)."""
    return orjson.loads(orjson.dumps(page["items"]))


def test_sku_is_unique_among_live_products_only(db: Db):
    first = make_product(db, sku="MUG-1")
    with pytest.raises(ApiError) as raised:
        make_product(db, sku="MUG-1")
    assert raised.value.code == "sku_conflict"

    db.write(products.archive_product, first.id)
    again = make_product(db, sku="MUG-1")

    assert again.id != first.id
    assert db.value("SELECT count(*) FROM products WHERE sku = 'MUG-1'") == 2


def test_archived_product_is_gone_but_orders_keep_their_snapshot(db: Db):
    mug = make_product(db, name="Mug")
    order = make_order(db, (mug, 1))

    db.write(products.archive_product, mug.id)

    with pytest.raises(ApiError) as raised:
        db.read(products.get_product, mug.id)
    assert raised.value.code == "product_not_found"
    with pytest.raises(ApiError):
        db.write(products.archive_product, mug.id)
    assert db.value("SELECT name FROM order_lines WHERE order_id = :id", id=order.id) == "Mug"
    assert product_row(db, mug.id).archived_at is not None


def test_update_changes_only_the_fields_sent(db: Db):
    mug = make_product(db, name="Mug", price="5.00", stock=3)

    updated = db.write(products.update_product, mug.id, ProductUpdate(price="6.10"))

    assert (updated["name"], updated["price"], updated["stock"]) == ("Mug", "6.10", 3)
    row = product_row(db, mug.id)
    assert (row.name, row.price_cents, row.on_hand) == ("Mug", 610, 3)


def test_update_to_a_taken_sku_is_a_conflict_and_changes_nothing(db: Db):
    make_product(db, sku="ONE")
    two = make_product(db, sku="TWO", name="Two")

    with pytest.raises(ApiError) as raised:
        db.write(products.update_product, two.id, ProductUpdate(sku="ONE", name="Renamed"))

    assert raised.value.code == "sku_conflict"
    assert (product_row(db, two.id).sku, product_row(db, two.id).name) == ("TWO", "Two")


def test_update_with_stale_etag_is_refused_and_changes_nothing(db: Db):
    mug = make_product(db, name="Mug")
    stale = etags.etag(mug)
    db.write(products.update_product, mug.id, ProductUpdate(name="Big mug"))

    with pytest.raises(ApiError) as raised:
        db.write(products.update_product, mug.id, ProductUpdate(name="Small mug"), stale)

    assert raised.value.status == 412
    assert db.read(products.get_product, mug.id)["name"] == "Big mug"


def test_update_with_current_etag_or_star_applies(db: Db):
    mug = make_product(db, name="Mug")
    renamed = db.write(
        products.update_product, mug.id, ProductUpdate(name="A"), f'"nope", {etags.etag(mug)}'
    )["name"]
    again = db.write(products.update_product, mug.id, ProductUpdate(name="B"), "*")["name"]
    assert (renamed, again) == ("A", "B")


def test_list_filters_by_sku_name_and_stock(db: Db):
    make_product(db, sku="MUG-RED", name="Red Mug", stock=0)
    make_product(db, sku="MUG-BLUE", name="Blue mug", stock=5)
    make_product(db, sku="TEE", name="T-shirt 100%_x", stock=1)

    def skus(**filters):
        page = db.scan(products.list_products, limit=10, offset=0, **filters)
        assert page["total"] == len(page["items"])
        return [p["sku"] for p in shown(page)]

    assert skus(q="MUG") == ["MUG-RED", "MUG-BLUE"]
    assert skus(q="%") == ["TEE"]
    assert skus(q="_") == ["TEE"]
    assert skus(sku="TEE") == ["TEE"]
    assert skus(in_stock=True) == ["MUG-BLUE", "TEE"]
    assert skus(in_stock=False) == ["MUG-RED"]


def test_list_by_cursor_pages_in_id_order_with_no_count(db: Db):
    ids = [make_product(db)["id"] for _ in range(5)]

    first = db.scan(products.list_products, limit=2, offset=0)
    second = db.read(products.list_products, limit=2, after=first["next"])
    last = db.read(products.list_products, limit=2, after=second["next"])

    assert [p["id"] for p in shown(first) + shown(second) + shown(last)] == ids
    assert (first["total"], first["offset"]) == (5, 0)
    assert (second["total"], second["offset"]) == (None, None)
    assert last["next"] is None


def test_an_offset_page_carries_its_count_past_the_end_and_on_an_empty_catalog(db: Db):
    """The page and its count are one statement: a page past the end still has the total."""
    empty = db.scan(products.list_products, limit=5, offset=0)
    assert (empty["items"], empty["total"], empty["next"]) == ([], 0, None)
    ids = [make_product(db)["id"] for _ in range(3)]
    db.write(products.archive_product, ids[0])

    middle = db.scan(products.list_products, limit=1, offset=1)
    past = db.scan(products.list_products, limit=5, offset=7)

    assert ([p["id"] for p in shown(middle)], middle["total"]) == ([ids[2]], 2)
    assert middle["next"] is None  # the last live product
    assert (past["items"], past["total"], past["offset"], past["next"]) == ([], 2, 7, None)


def test_the_kept_count_of_live_products_follows_every_change_to_the_catalog(db: Db):
    """`catalog_counts` (kept by triggers) is what an unfiltered page shows as its total: it
    must equal a real count after creates, archives, orders, bulk inserts, deletes and an
    archive undone by hand, on each engine."""

    def kept() -> int:
        return db.value("SELECT live_products FROM catalog_counts")

    def counted() -> int:
        return db.value("SELECT count(*) FROM products WHERE archived_at IS NULL")

    seen = [(kept(), counted())]
    mugs = [make_product(db, stock=5) for _ in range(4)]
    spare = make_product(db, stock=0)  # no ledger movement: free to delete
    db.write(products.archive_product, mugs[0].id)
    make_order(db, (mugs[1], 2), (mugs[2], 1))  # stock moves; the count must not
    seen.append((kept(), counted()))
    db.execute(
        "INSERT INTO products (sku, name, price_cents, on_hand, created_at, updated_at, "
        "archived_at) SELECT 'BULK-' || id, name, price_cents, on_hand, created_at, updated_at, "
        "CASE WHEN id % 2 = 0 THEN updated_at END FROM products"
    )  # one statement of five rows, two of them archived
    seen.append((kept(), counted()))
    db.execute("UPDATE products SET archived_at = NULL WHERE id = :id", id=mugs[0].id)
    db.execute("UPDATE products SET archived_at = updated_at WHERE sku LIKE 'BULK-%'")
    seen.append((kept(), counted()))
    db.execute("DELETE FROM products WHERE archived_at IS NOT NULL")
    db.execute("DELETE FROM products WHERE id = :id", id=spare.id)
    seen.append((kept(), counted()))

    assert seen == [(0, 0), (4, 4), (7, 7), (5, 5), (4, 4)]
    page = db.scan(products.list_products, limit=2, offset=0)
    assert page["total"] == 4
    empty = db.scan(products.list_products, limit=2, offset=10)
    assert (empty["items"], empty["total"]) == ([], 4)


ODD_PRODUCTS = (
    {"sku": "Q-1", "name": 'Quote " and back\\slash', "description": None, "price": "0.01"},
    {
        "sku": "U-2",
        "name": "Ünïcödé ☕ mug 🍵",
        "description": "Tab\tand\nnew line",
        "price": "99999999.99",
    },
    {"sku": "Z-3", "name": "</script> & <b>", "description": "", "price": "10.00", "stock": 0},
)


def test_a_listed_product_is_the_same_json_as_the_product_itself(db: Db):
    """A list's items are JSON the database writes; key for key and value for value they are
    what GET /products/{id} shows (`product_view`), on each engine, odd text included."""
    made = [make_product(db, **fields) for fields in ODD_PRODUCTS]

    page = db.scan(products.list_products, limit=10, offset=0)

    alone = [db.read(products.get_product, product.id) for product in made]
    assert [list(item) for item in shown(page)] == [list(products.VIEW_FIELDS)] * len(made)
    assert shown(page) == alone
    assert [item["price"] for item in alone] == ["0.01", "99999999.99", "10.00"]
    assert orjson.loads(orjson.dumps(page))["items"] == alone
