"""The live tests' ledger check (tests/support/ledger.py) fails on either quantity: a product
whose committed drifted from what its orders hold, or whose on_hand moved outside the ledger."""

import pytest

from app.core.config import Settings
from tests.support.factories import Db, make_order, make_product
from tests.support.ledger import assert_ledger_holds, invariants, ledger_figures


def test_the_check_holds_on_a_shop_the_service_made(db: Db, settings: Settings):
    product = make_product(db, stock=10)
    make_order(db, (product, 3))

    figures = assert_ledger_holds(settings.database_url, "untouched")

    assert (figures["orders"], figures["movements"], figures["violations"]) == (1, 2, [])
    assert figures["quantities"] == {product["id"]: (10, 3)}
    assert invariants(figures).startswith(
        "on_hand = Σ on_hand_delta: yes; committed = Σ committed_delta = units held: yes"
    )


@pytest.mark.parametrize("quantity", ["committed", "on_hand"])
def test_the_check_fails_when_a_quantity_drifts(db: Db, settings: Settings, quantity: str):
    product = make_product(db, stock=10)
    make_order(db, (product, 3))
    db.execute(f"UPDATE products SET {quantity} = {quantity} + 1 WHERE id = :id", id=product["id"])

    violations = ledger_figures(settings.database_url)["violations"]
    with pytest.raises(AssertionError):
        assert_ledger_holds(settings.database_url, f"{quantity} drifted")

    assert violations and all(f": {quantity} " in v for v in violations), violations
    if quantity == "committed":
        assert f"product {product['id']}: committed 4 but its orders hold 3 units" in violations
