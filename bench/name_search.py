"""Name search on SQLite: the old `lower(name) LIKE` against the folded match of
app/products.py (ASCII names left to LIKE, others lowered by Python's str.lower), over 1,000
ASCII names and 1,000 non-ASCII ones; sqlite3 alone, no service.

    .venv/bin/python -m bench.name_search
"""

import functools
import sqlite3
import timeit


def scan(connection: sqlite3.Connection, sql: str, pattern: str) -> None:
    connection.execute(sql, (pattern,)).fetchone()


for label, names in (
    ("ASCII", [f"Bench product {n}" for n in range(1000)]),
    ("non-ASCII", [f"Éclair n°{n}" for n in range(1000)]),
):
    c = sqlite3.connect(":memory:")
    c.create_function("unicode_lower", 1, str.lower, deterministic=True)
    c.execute("CREATE TABLE p (id INTEGER PRIMARY KEY, name TEXT)")
    c.executemany("INSERT INTO p (name) VALUES (?)", [(n,) for n in names])
    old = "SELECT count(*) FROM p WHERE lower(name) LIKE ? ESCAPE '/'"
    new = (
        "SELECT count(*) FROM p WHERE (CASE WHEN length(name) = length(CAST(name AS BLOB))"
        " THEN name ELSE unicode_lower(name) END) LIKE unicode_lower(?) ESCAPE '/'"
    )
    for name, sql, arg in (("lower()", old, "%product 99%"), ("folded", new, "%PRODUCT 99%")):
        t = min(timeit.repeat(functools.partial(scan, c, sql, arg), number=200, repeat=5)) / 200
        print(f"{label:9} {name:8} {t * 1e6:.0f} µs per scan of 1,000 names")
