"""SQLite with several writers at once: each worker process has its own connections and its
own event loop, and they meet only at SQLite's write lock, which `BEGIN IMMEDIATE` with a zero
busy timeout takes, retried with async sleeps. Every write must succeed and none be lost."""

import threading
from pathlib import Path

from sqlmodel import SQLModel

from app.core.config import Settings
from app.db.connect import create_database, create_db_engine
from tests.support.factories import Db, make_order, make_product, orders_in_db, stock_of

WORKERS = 4
ORDERS_PER_WORKER = 40


def test_writers_of_several_workers_queue_at_the_write_lock_and_all_succeed(tmp_path: Path):
    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'orders.db'}")
    engine = create_db_engine(settings)
    SQLModel.metadata.create_all(engine)
    engine.dispose()
    setup = Db(create_database(settings))
    product = make_product(setup, stock=10_000)
    start = threading.Barrier(WORKERS, timeout=30)
    failures: list[BaseException] = []

    def worker() -> None:
        # A Database and an event loop of its own, as each uvicorn worker process has.
        db = Db(create_database(settings))
        try:
            start.wait()
            for _ in range(ORDERS_PER_WORKER):
                make_order(db, (product, 1))
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)
        finally:
            db.close()

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert failures == []
    assert orders_in_db(setup) == WORKERS * ORDERS_PER_WORKER
    assert stock_of(setup, product.id) == 10_000 - WORKERS * ORDERS_PER_WORKER
    setup.close()
