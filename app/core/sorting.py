"""Sorted lists: `sort=<field>` or `sort=-<field>`, ties broken by id in the same direction, and
keyset cursors on (key, id) bound to their sort and filters.

A list declares its sorts once (`Sorting`): each field's SQL key expression and the type of its
values. From that come the query parameter's values (`Sorting.values`, an enum: anything else is
422 `validation_error` at `["query", "sort"]`), each sort's `ORDER BY` and the condition of the
page after a cursor, `(key, id) > (:after_key, :after_id)` (`<` descending): the database walks an
index on (key, id) from the cursor, so a page after it costs O(limit) wherever it is.

A cursor holds a digest of the sort and the filters it was issued under, the last row's key and
its id (app/core/cursors.py `encode_keyed`); under another sort or other filters it is 422
`invalid_cursor`, never a silently wrong page.
"""

import functools
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

from app.core import cursors


# How a sort key's values travel in a cursor: an integer, a text, or a timestamp.
class KeyType(StrEnum):
    INT = "int"
    TEXT = "text"
    TIME = "time"


# One field a list may be sorted by: the SQL expression of its key and the key's type.
@dataclass(frozen=True)
class Key:
    sql: str
    type: KeyType = KeyType.INT


# One sort of one list: by `key` (None: by id alone), ascending or descending.
@dataclass(frozen=True)
class Sort:
    value: str
    key: Key | None
    descending: bool
    id_sql: str

    @property
    def _direction(self) -> str:
        return "DESC" if self.descending else "ASC"

    def order_by(self) -> str:
        """The ORDER BY terms: the key, then the id, both in the sort's direction."""
        by_id = f"{self.id_sql} {self._direction}"
        return by_id if self.key is None else f"{self.key.sql} {self._direction}, {by_id}"

    def after(self) -> str:
        """The condition of the rows after a cursor (`:after_key`, `:after_id`)."""
        beyond = "<" if self.descending else ">"
        if self.key is None:
            return f"{self.id_sql} {beyond} :after_id"
        return f"({self.key.sql}, {self.id_sql}) {beyond} (:after_key, :after_id)"

    def selected(self) -> str:
        """What a statement selects besides a row's fields: its key, as `sort_key`."""
        return "" if self.key is None else f", {self.key.sql} AS sort_key"


def _binding(kind: str, sort: Sort, filters: dict[str, Any]) -> str:
    return _digest(kind, sort.value, tuple(sorted(filters.items())))


# Every page with a next one makes its cursor: the digest of a sort and filters once, not per
# page (a page of the first list of products: 5.5 → 2 µs).
@functools.lru_cache(maxsize=4096)
def _digest(kind: str, sort: str, filters: tuple[tuple[str, Any], ...]) -> str:
    described = orjson.dumps([kind, sort, dict(filters)], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(described).hexdigest()[:16]


def _key_out(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _key_in(key_type: KeyType, value: Any) -> Any:
    """A key from a cursor as the statement takes it; invalid_cursor if it is not one."""
    if key_type is KeyType.INT and type(value) is int and -(2**63) <= value < 2**63:
        return value
    if key_type is KeyType.TEXT and isinstance(value, str):
        return value
    if key_type is KeyType.TIME and isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise cursors.invalid_cursor() from None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise cursors.invalid_cursor()


class Sorting:
    """The sorts list `kind` offers: each field by name, with its key (None: the id itself)."""

    def __init__(
        self, kind: str, enum_name: str, fields: dict[str, Key | None], id_sql: str
    ) -> None:
        self.kind = kind
        self.sorts: dict[str, Sort] = {}
        for name, key in fields.items():
            for descending in (False, True):
                value = f"-{name}" if descending else name
                self.sorts[value] = Sort(value, key, descending, id_sql)
        members = [(value.replace("-", "DESC_").upper(), value) for value in self.sorts]
        # The query parameter's type: any other value is a 422 validation_error.
        self.values: type[StrEnum] = StrEnum(enum_name, members)  # type: ignore[misc]

    def __getitem__(self, value: str) -> Sort:
        return self.sorts[str(value)]

    def cursor(self, sort: Sort, filters: dict[str, Any], row: dict[str, Any]) -> str:
        """The cursor of the page after `row` (it selected `sort.selected()`)."""
        key = None if sort.key is None else _key_out(row["sort_key"])
        return cursors.encode_keyed(self.kind, [_binding(self.kind, sort, filters), key, row["id"]])

    def after(self, sort: Sort, filters: dict[str, Any], cursor: str) -> dict[str, Any]:
        """The statement's `after_key` and `after_id` from a cursor this list issued under
        this sort and these filters; 422 invalid_cursor for any other."""
        binding, key, row_id = cursors.decode_keyed(self.kind, cursor, 3)
        if binding != _binding(self.kind, sort, filters):
            raise cursors.invalid_cursor(
                "`after` is a cursor of another sort or other filters: page from the start "
                "with these, or send the ones it was issued with."
            )
        if type(row_id) is not int or not 1 <= row_id < 2**63:
            raise cursors.invalid_cursor()
        if sort.key is None:
            if key is not None:
                raise cursors.invalid_cursor()
            return {"after_id": row_id}
        return {"after_key": _key_in(sort.key.type, key), "after_id": row_id}
