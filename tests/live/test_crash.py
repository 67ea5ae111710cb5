"""A server killed with SIGKILL in the middle of a load of orders, cancels, payments,
shipments and stock counts loses no unit and invents none: after a restart, for every product,
on_hand = its opening on_hand + the counts' corrections - the units shipped, committed = the
units its orders hold (bench/stock_check.py, over HTTP), and the ledger's audit of both
quantities holds on the database."""

from collections import Counter
from pathlib import Path

import pytest

from bench.stock_check import check_stock
from tests.support.databases import database_url
from tests.support.ledger import assert_ledger_holds
from tests.support.live_server import LiveServer
from tests.support.load import INITIAL_STOCK, kill_mid_load

pytestmark = pytest.mark.live


def test_sigkill_mid_load_of_orders_shipments_and_counts_loses_no_unit(
    db_kind: str, tmp_path: Path
):
    with database_url(db_kind, tmp_path) as url:
        ids, seen = kill_mid_load(url, tmp_path)

        # The kill really landed mid-load, with shipments among it.
        assert seen[201] > 0 and seen["shipment 201"] > 0, seen
        with LiveServer(url, workers=1, log_path=tmp_path / "restart.log") as restarted:
            figures: Counter = Counter()
            initial = dict.fromkeys(ids, INITIAL_STOCK)
            assert check_stock(restarted.base_url, initial, figures=figures) == [], seen
            print(f"SIGKILL mid-load {dict(seen)}; over HTTP after restart {dict(figures)}")
            assert_ledger_holds(url, f"SIGKILL mid-load ({dict(seen)})", restarted.base_url)
