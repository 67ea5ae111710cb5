"""The catalog's rules, straight against a session."""

import pytest
from sqlmodel import Session

from app import catalog
from app.errors import ApiError
from app.schemas import ProductUpdate
from tests.factories import make_order, make_product


def test_sku_is_unique_among_live_products_only(session: Session):
    first = make_product(session, sku="MUG-1")
    with pytest.raises(ApiError) as raised:
        make_product(session, sku="MUG-1")
    assert raised.value.code == "sku_conflict"

    catalog.archive_product(session, first.id)
    again = make_product(session, sku="MUG-1")

    assert again.id != first.id


def test_archived_product_is_gone_but_orders_keep_their_snapshot(session: Session):
    mug = make_product(session, name="Mug")
    order = make_order(session, (mug, 1))

    catalog.archive_product(session, mug.id)

    with pytest.raises(ApiError) as raised:
        catalog.get_product(session, mug.id)
    assert raised.value.code == "product_not_found"
    with pytest.raises(ApiError):
        catalog.archive_product(session, mug.id)
    assert order.lines[0].name == "Mug"


def test_update_changes_only_the_fields_sent(session: Session):
    mug = make_product(session, name="Mug", price="5.00", stock=3)

    updated = catalog.update_product(session, mug.id, ProductUpdate(price="6.10"))

    assert (updated.name, updated.price_cents, updated.stock) == ("Mug", 610, 3)


def test_update_with_stale_etag_is_refused_and_changes_nothing(session: Session):
    mug = make_product(session, name="Mug")
    stale = catalog.etag(mug)
    catalog.update_product(session, mug.id, ProductUpdate(name="Big mug"))

    with pytest.raises(ApiError) as raised:
        catalog.update_product(session, mug.id, ProductUpdate(name="Small mug"), if_match=stale)

    assert raised.value.status == 412
    assert catalog.get_product(session, mug.id).name == "Big mug"


def test_update_with_current_etag_or_star_applies(session: Session):
    mug = make_product(session, name="Mug")
    renamed = catalog.update_product(
        session, mug.id, ProductUpdate(name="A"), if_match=f'"nope", {catalog.etag(mug)}'
    ).name
    again = catalog.update_product(session, mug.id, ProductUpdate(name="B"), if_match="*").name
    assert (renamed, again) == ("A", "B")


def test_list_filters_by_sku_name_and_stock(session: Session):
    make_product(session, sku="MUG-RED", name="Red Mug", stock=0)
    make_product(session, sku="MUG-BLUE", name="Blue mug", stock=5)
    make_product(session, sku="TEE", name="T-shirt 100%", stock=1)

    def skus(**filters):
        products, total = catalog.list_products(session, limit=10, offset=0, **filters)
        assert total == len(products)
        return [p.sku for p in products]

    assert skus(q="MUG") == ["MUG-RED", "MUG-BLUE"]
    assert skus(q="%") == ["TEE"]
    assert skus(sku="TEE") == ["TEE"]
    assert skus(in_stock=True) == ["MUG-BLUE", "TEE"]
    assert skus(in_stock=False) == ["MUG-RED"]
