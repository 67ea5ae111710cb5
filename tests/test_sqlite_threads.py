"""Regression: one SQLite connection shared between threads corrupts its state and crashes
the process under concurrent writes. The engine must give each thread its own connection,
and concurrent writers must all succeed (they queue for the write lock)."""

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel, func, select

from app.config import Settings
from app.database import create_db_engine
from app.tables import Order, Product
from app.writer_lock import WriterLock
from tests.factories import make_order, make_product, stock_of

THREADS = 8
ORDERS_PER_THREAD = 25


def test_concurrent_writers_each_get_their_own_connection_and_all_succeed(
    tmp_path: Path,
) -> None:
    engine = create_db_engine(
        Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'orders.db'}")
    )
    SQLModel.metadata.create_all(engine)
    with Session(engine, expire_on_commit=False) as session:
        product = make_product(session, stock=10_000)
    all_holding = threading.Barrier(THREADS, timeout=30)

    def writer(_: int) -> int:
        with Session(engine, expire_on_commit=False) as session:
            session.exec(select(Product)).all()  # a read keeps this thread's connection
            connection = id(session.connection().connection.dbapi_connection)
            all_holding.wait()  # every thread holds its connection at the same moment
            for _ in range(ORDERS_PER_THREAD):
                make_order(session, (product, 1))
        return connection

    with ThreadPoolExecutor(THREADS) as pool:
        connections = list(pool.map(writer, range(THREADS)))

    assert len(set(connections)) == THREADS
    with Session(engine) as session:
        assert (
            session.exec(select(func.count()).select_from(Order)).one()
            == THREADS * ORDERS_PER_THREAD
        )
        assert stock_of(session, product.id) == 10_000 - THREADS * ORDERS_PER_THREAD
    engine.dispose()


def test_writers_of_another_process_wait_for_the_lock_and_give_up_as_sqlite_would(
    tmp_path: Path,
) -> None:
    # Two locks on one database stand for two worker processes: flock excludes them the same.
    path = str(tmp_path / "orders.db")
    worker_1, worker_2 = WriterLock(path, timeout=30), WriterLock(path, timeout=0.2)
    with worker_1:
        with pytest.raises(OperationalError, match="database is locked"):
            with worker_2:
                pass
    with worker_2:  # free again once the first writer is done
        pass
