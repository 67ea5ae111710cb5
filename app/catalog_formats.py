"""A catalog file's rows in and out: CSV and NDJSON, for the import and the export.

In: an import's body, as `(row, fields)` pairs (`row` the line a spreadsheet or an editor shows:
on CSV the header is row 1, on NDJSON each line is its own number), and the errors of rows
that could not be read at all (not UTF-8 text, not a JSON object, more cells than columns). A
CSV cell left empty is a field not given, so it changes nothing; digits in a count's cell are
that number. Out: a batch of export records as CSV or NDJSON bytes. No database here.
"""

import csv
import io
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from app.core.errors import ApiError

CSV = "text/csv"
NDJSON = "application/x-ndjson"
MEDIA_TYPES = (CSV, NDJSON)
# The columns an import takes (only `sku` is required), and those an export adds, which an
# import accepts and ignores, so that an export imports again as it is.
IMPORT_COLUMNS = ("sku", "name", "description", "price", "on_hand", "low_stock_threshold")
EXPORT_COLUMNS = (
    "id",
    "sku",
    "name",
    "description",
    "price",
    "on_hand",
    "committed",
    "available",
    "low_stock_threshold",
    "updated_at",
)
READ_ONLY_COLUMNS = tuple(column for column in EXPORT_COLUMNS if column not in IMPORT_COLUMNS)
KNOWN_COLUMNS = frozenset(EXPORT_COLUMNS)
# Counts in a CSV cell: digits are a number; anything else is left as text, for the row's
# validation to refuse in words.
_COUNTS = frozenset({"on_hand", "low_stock_threshold", "id", "committed", "available"})
_INTEGER = re.compile(r"-?[0-9]+")
MAX_ROWS = 10_000

Row = tuple[int, dict[str, Any]]
RowError = dict[str, Any]


def row_error(row: int, sku: Any, loc: Sequence[str | int], msg: str) -> RowError:
    return {"row": row, "sku": sku if isinstance(sku, str) else None, "loc": list(loc), "msg": msg}


def media_type(content_type: str | None) -> str:
    """The import's format from its Content-Type (parameters aside); 415 for any other."""
    found = (content_type or "").split(";")[0].strip().lower()
    if found not in MEDIA_TYPES:
        raise ApiError(
            "unsupported_media_type",
            f"An import is text/csv or application/x-ndjson, not {found or 'unnamed'}.",
            supported=list(MEDIA_TYPES),
        )
    return found


def too_many_rows() -> ApiError:
    return ApiError(
        "payload_too_large",
        f"An import takes at most {MAX_ROWS} rows; split the file.",
        max_rows=MAX_ROWS,
    )


def read_rows(body: bytes, media: str) -> tuple[list[Row], list[RowError]]:
    """The body's rows and the errors of those unreadable; 413 past MAX_ROWS rows."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return [], [row_error(1, None, ["body"], f"not UTF-8 text (byte {error.start})")]
    reader = _csv_rows(text) if media == CSV else _ndjson_rows(text)
    rows: list[Row] = []
    errors: list[RowError] = []
    for read in reader:
        if isinstance(read, tuple):
            if len(rows) == MAX_ROWS:
                raise too_many_rows()
            rows.append(read)
        else:
            errors.append(read)
    return rows, errors


def _csv_rows(text: str) -> Iterator[Row | RowError]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [cell.strip() for cell in next(reader, [])]
        unusable = _header_errors(header)
        if unusable:
            yield from unusable
            return
        for cells in reader:
            number = reader.line_num
            if not any(cells):
                continue  # a blank line
            if len(cells) > len(header):
                yield row_error(number, cells[0], [], "more cells than columns")
                continue
            yield (
                number,
                {
                    column: _cell(column, cell)
                    for column, cell in zip(header, cells, strict=False)
                    if cell != ""
                },
            )
    except csv.Error as error:
        yield row_error(reader.line_num, None, [], f"not CSV: {error}")


def _header_errors(header: list[str]) -> list[RowError]:
    if "sku" not in header:
        return [row_error(1, None, ["sku"], "the header row has no sku column")]
    errors = [
        row_error(1, None, [column], f"unknown column; the columns are {', '.join(EXPORT_COLUMNS)}")
        for column in header
        if column not in KNOWN_COLUMNS
    ]
    errors += [
        row_error(1, None, [column], "column named twice")
        for at, column in enumerate(header)
        if column in header[:at]
    ]
    return errors


def _cell(column: str, cell: str) -> Any:
    return int(cell) if column in _COUNTS and _INTEGER.fullmatch(cell) else cell


def _distinct_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise ValueError("an object names a key twice")
    return found


def _ndjson_rows(text: str) -> Iterator[Row | RowError]:
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            fields = json.loads(line, object_pairs_hook=_distinct_keys)
        except json.JSONDecodeError as error:
            yield row_error(number, None, [], f"not JSON: {error.msg}")
            continue
        except (ValueError, RecursionError) as error:
            yield row_error(number, None, [], f"not JSON: {error}")
            continue
        if not isinstance(fields, dict):
            yield row_error(number, None, [], "not a JSON object")
            continue
        yield number, fields


def csv_header() -> bytes:
    return _csv_lines([list(EXPORT_COLUMNS)])


def csv_batch(records: list[dict[str, Any]]) -> bytes:
    """Export records as CSV lines (a null is an empty cell)."""
    return _csv_lines(
        [["" if record[c] is None else record[c] for c in EXPORT_COLUMNS] for record in records]
    )


def _csv_lines(rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def ndjson_batch(records: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(record) + b"\n" for record in records)
