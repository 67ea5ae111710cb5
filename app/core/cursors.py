"""Opaque list cursors: where a page ended, in a form only the list that issued it accepts.

A cursor names its list (`products`, `orders`, ...) and the position (an id, or any text the
list chooses), base64url-encoded: a client treats it as opaque, and a cursor from another list,
or a mangled one, is 422 `invalid_cursor` rather than a silently wrong page. A list that belongs
to one resource (a product's movements) puts the resource's id in its cursors as well, so a
cursor from one product's list is refused on another's.
"""

import base64
import binascii
from typing import Any

import orjson

from app.core.errors import ApiError
from app.core.formats import MAX_ID

MAX_LENGTH = 200  # no list issues a longer cursor, except a keyed one:
# a sorted list's cursor carries its sort key, a name of up to 200 characters among them.
MAX_KEYED_LENGTH = 1200


def invalid_cursor(detail: str = "`after` is not a cursor this list issued.") -> ApiError:
    return ApiError("invalid_cursor", detail)


def encode(kind: str, position: int | str) -> str:
    raw = f"{kind}:{position}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_text(kind: str, cursor: str) -> str:
    """The position a cursor of list `kind` holds; ApiError 422 for anything else."""
    if not cursor or len(cursor) > MAX_LENGTH:
        raise invalid_cursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise invalid_cursor() from None
    found, separator, position = raw.partition(":")
    if found != kind or not separator or not position:
        raise invalid_cursor()
    return position


def decode_id(kind: str, cursor: str) -> int:
    """The row id a cursor of list `kind` holds."""
    position = decode_text(kind, cursor)
    if not position.isascii() or not position.isdigit() or not 1 <= int(position) <= MAX_ID:
        raise invalid_cursor()
    return int(position)


def encode_ids(kind: str, *ids: int) -> str:
    """A cursor of list `kind` holding a position of several numbers (an owner's id, a row's)."""
    return encode(kind, ":".join(map(str, ids)))


def decode_ids(kind: str, cursor: str, size: int) -> tuple[int, ...]:
    """The `size` numbers a cursor of list `kind` holds, each below 2**63."""
    parts = decode_text(kind, cursor).split(":")
    if len(parts) != size or not all(part.isascii() and part.isdigit() for part in parts):
        raise invalid_cursor()
    ids = tuple(int(part) for part in parts)
    if not all(number < 2**63 for number in ids):
        raise invalid_cursor()
    return ids


def decode_owned_id(kind: str, cursor: str, owner: int) -> int:
    """The row id of a cursor that `encode_ids(kind, owner, id)` issued for this `owner`."""
    found, row_id = decode_ids(kind, cursor, 2)
    if found != owner or not 1 <= row_id <= MAX_ID:
        raise invalid_cursor()
    return row_id


def encode_keyed(kind: str, values: list[Any]) -> str:
    """A cursor of list `kind` holding JSON `values` (a sorted list's binding, key and id)."""
    raw = kind.encode() + b":" + orjson.dumps(values)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_keyed(kind: str, cursor: str, size: int) -> list[Any]:
    """The `size` JSON values a cursor that `encode_keyed(kind, ...)` issued holds; the caller
    checks each one's type. ApiError 422 for anything else."""
    if not cursor or len(cursor) > MAX_KEYED_LENGTH:
        raise invalid_cursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise invalid_cursor() from None
    found, separator, position = raw.partition(b":")
    if found != kind.encode() or not separator:
        raise invalid_cursor()
    try:
        values = orjson.loads(position)
    except orjson.JSONDecodeError:
        raise invalid_cursor() from None
    if not isinstance(values, list) or len(values) != size:
        raise invalid_cursor()
    return values
