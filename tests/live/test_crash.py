"""A server killed with SIGKILL in the middle of an order load loses no stock and invents none:
after a restart, every product's stock is its initial stock minus its non-canceled orders, and
the sum of its movements (the ledger's audit)."""

from pathlib import Path

import httpx
import pytest

from tests.support.databases import database_url
from tests.support.ledger import assert_ledger_holds
from tests.support.live_server import LiveServer
from tests.support.load import INITIAL_STOCK, committed_quantities, kill_mid_load

pytestmark = pytest.mark.live


def test_sigkill_mid_load_keeps_stock_equal_to_initial_minus_live_orders(
    db_kind: str, tmp_path: Path
):
    with database_url(db_kind, tmp_path) as url:
        ids, seen = kill_mid_load(url, tmp_path)

        assert seen[201] > 0, seen  # the kill really landed mid-load
        with LiveServer(url, workers=1, log_path=tmp_path / "restart.log") as restarted:
            taken = committed_quantities(restarted.base_url)
            for pid in ids:
                stock = httpx.get(f"{restarted.base_url}/products/{pid}", timeout=30).json()
                assert stock["stock"] == INITIAL_STOCK - taken[pid], (pid, seen)
        assert_ledger_holds(url, f"SIGKILL mid-load ({dict(seen)})")
