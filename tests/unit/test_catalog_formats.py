"""A catalog file's rows: CSV and NDJSON read into rows or each unreadable row's error, and the
export's records written back as the same columns."""

import csv
import io
import json

import pytest

from app.catalog_formats import (
    CSV,
    EXPORT_COLUMNS,
    MAX_ROWS,
    NDJSON,
    csv_batch,
    csv_header,
    media_type,
    ndjson_batch,
    read_rows,
)
from app.core.errors import ApiError


def test_csv_rows_skip_empty_cells_and_blank_lines_and_read_counts_as_numbers():
    body = "\ufeffsku,name,on_hand\r\nA-1,,5\r\n\r\nB-1,Bee,x\r\n".encode()

    rows, errors = read_rows(body, CSV)

    assert errors == []
    assert rows == [
        (2, {"sku": "A-1", "on_hand": 5}),
        (4, {"sku": "B-1", "name": "Bee", "on_hand": "x"}),
    ]


def test_csv_header_errors_stop_the_rows():
    rows, errors = read_rows(b"name,colour,name\nMug,red,Mug\n", CSV)

    assert rows == []
    assert [(e["row"], e["loc"]) for e in errors] == [(1, ["sku"])]
    rows, errors = read_rows(b"sku,colour,sku\nA-1,red,A-1\n", CSV)
    assert [(e["row"], e["loc"]) for e in errors] == [(1, ["colour"]), (1, ["sku"])]


def test_a_csv_row_with_more_cells_than_columns_is_an_error_of_its_own():
    rows, errors = read_rows(b"sku,name\nA-1,A,extra\nB-1,B\n", CSV)

    assert rows == [(3, {"sku": "B-1", "name": "B"})]
    assert errors == [{"row": 2, "sku": "A-1", "loc": [], "msg": "more cells than columns"}]


def test_ndjson_lines_are_numbered_as_the_file_and_bad_ones_are_errors():
    body = b'{"sku": "A-1"}\n\n[1]\n{"sku": "B-1", "sku": "C-1"}\nnot json\n{"sku": "D-1"}'

    rows, errors = read_rows(body, NDJSON)

    assert rows == [(1, {"sku": "A-1"}), (6, {"sku": "D-1"})]
    assert [e["row"] for e in errors] == [3, 4, 5]
    assert all(e["msg"] for e in errors)


def test_a_body_that_is_not_utf8_is_one_error():
    rows, errors = read_rows(b"sku\n\xff\n", CSV)

    assert rows == [] and errors[0]["loc"] == ["body"]


def test_more_rows_than_the_limit_is_payload_too_large():
    body = ("sku\n" + "A\n" * (MAX_ROWS + 1)).encode()

    with pytest.raises(ApiError) as raised:
        read_rows(body, CSV)

    assert raised.value.code == "payload_too_large"
    assert len(read_rows(("sku\n" + "A\n" * MAX_ROWS).encode(), CSV)[0]) == MAX_ROWS


@pytest.mark.parametrize(
    ("sent", "found"),
    [("text/csv; charset=utf-8", CSV), ("Application/X-NDJSON", NDJSON)],
)
def test_media_types_ignore_parameters_and_case(sent, found):
    assert media_type(sent) == found


def test_any_other_media_type_is_415():
    with pytest.raises(ApiError) as raised:
        media_type("application/json")

    assert raised.value.code == "unsupported_media_type"


def test_export_records_read_back_as_the_same_fields_in_both_formats():
    record = {
        "id": 7,
        "sku": "MUG-1",
        "name": 'Mug, "blue"',
        "description": "Line 1\nLine 2",
        "price": "12.50",
        "on_hand": 5,
        "committed": 0,
        "available": 5,
        "low_stock_threshold": None,
        "updated_at": "2026-12-08T04:00:00Z",
    }

    text = (csv_header() + csv_batch([record])).decode()
    (row,) = csv.DictReader(io.StringIO(text))
    (line,) = ndjson_batch([record]).decode().splitlines()

    assert list(row) == list(EXPORT_COLUMNS)
    assert row["name"] == record["name"] and row["description"] == record["description"]
    assert row["low_stock_threshold"] == ""
    assert json.loads(line) == record
