"""Changing a CHECK constraint in a migration, on both engines, without rebuilding the table.

PostgreSQL drops the constraint and adds the new one, which checks every row. SQLite has no
ALTER for constraints, and the usual way (build the table again, copy, drop, rename) is not open
to a table other tables reference: with foreign keys on, as the service runs, dropping it would
break every reference, and a migration runs in a transaction, where foreign keys cannot be
turned off. For a constraint that only widens (a list of values that gains one, as a new order
status or event type), SQLite documents the other way: rewrite the table's stored definition
under `writable_schema` and bump `schema_version` (https://sqlite.org/lang_altertable.html,
"Making Other Kinds Of Table Schema Changes"). The file's format does not change, and every row
already satisfies a wider condition; `replace_check` then has SQLite check every row against
the new definition anyway (`PRAGMA quick_check` reads the constraints), so a condition that
did not widen fails the migration instead of passing silently.
"""

import re
from collections.abc import Callable

from sqlalchemy import Connection, text


def _condition_span(definition: str, name: str) -> tuple[int, int]:
    """Where the condition of constraint `name` starts and ends in a CREATE TABLE text: the
    text between its CHECK's parentheses (nested ones balanced; the values are quoted names
    without parentheses)."""
    found = list(re.finditer(rf"CONSTRAINT\s+{name}\s+CHECK\s*\(", definition, re.IGNORECASE))
    if len(found) != 1:
        raise RuntimeError(f"constraint {name} is not once in the table's definition")
    begin = found[0].end()
    depth = 1
    for index in range(begin, len(definition)):
        char = definition[index]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return begin, index
    raise RuntimeError(f"constraint {name}'s condition does not close")


def _rewrite_definition(connection: Connection, table: str, change: Callable[[str], str]) -> None:
    """SQLite: replace `table`'s stored CREATE TABLE text by `change` of it, then have SQLite
    check every row against the new definition."""
    definition = connection.execute(
        text("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = :table"),
        {"table": table},
    ).scalar_one()
    changed = change(definition)
    version = connection.execute(text("PRAGMA schema_version")).scalar_one()
    connection.execute(text("PRAGMA writable_schema = ON"))
    connection.execute(
        text("UPDATE sqlite_schema SET sql = :sql WHERE type = 'table' AND name = :table"),
        {"sql": changed, "table": table},
    )
    connection.execute(text(f"PRAGMA schema_version = {int(version) + 1}"))
    connection.execute(text("PRAGMA writable_schema = OFF"))
    problems = connection.execute(text(f"PRAGMA quick_check({table})")).scalars().all()
    if problems != ["ok"]:
        raise RuntimeError(f"{table} after changing its definition: {problems}")


def widen_varchar(connection: Connection, table: str, column: str, length: int) -> None:
    """Let `table.column`, a VARCHAR, hold `length` characters (more than it did).
    PostgreSQL enforces the length (ALTER COLUMN TYPE, no rewrite for a longer VARCHAR);
    SQLite does not, but keeps the declared type, which the schema check reads."""
    if connection.dialect.name != "sqlite":
        connection.execute(
            text(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE VARCHAR({length})")
        )
        return

    def longer(definition: str) -> str:
        declared = re.compile(rf"(\b{column}\s+VARCHAR)\(\d+\)", re.IGNORECASE)
        changed, count = declared.subn(rf"\g<1>({length})", definition)
        if count != 1:
            raise RuntimeError(f"column {column} is not once in {table}'s definition")
        return changed

    _rewrite_definition(connection, table, longer)


def replace_check(connection: Connection, table: str, name: str, condition: str) -> None:
    """Make CHECK constraint `name` of `table` hold `condition` (a widening, on SQLite)."""
    if connection.dialect.name != "sqlite":
        connection.execute(text(f"ALTER TABLE {table} DROP CONSTRAINT {name}"))
        connection.execute(text(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({condition})"))
        return

    def replaced(definition: str) -> str:
        begin, end = _condition_span(definition, name)
        return definition[:begin] + condition + definition[end:]

    _rewrite_definition(connection, table, replaced)
