"""Catalog import and export: the whole catalog in one CSV or NDJSON file, in and out.

Its routes come before `/products/{product_id}` (app/routers/__init__.py), which would take
`import` and `export` for ids.
"""

import hashlib
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from starlette.types import Receive, Scope, Send

from app import catalog, catalog_formats, idempotency
from app.core.access import Role
from app.core.errors import problem_responses
from app.db.base import Connection, Database, gone
from app.db.connect import database_of
from app.http.access import admin_only, allow
from app.http.json_payloads import StrictJsonRoute, json_response
from app.schemas import CatalogExportRecord, CatalogImportReport

# This router's OpenAPI tag (app/routers/__init__.py lists them in the docs' order).
TAG = {
    "name": "catalog",
    "description": "The whole catalog in one file: import (upsert by SKU) and export.",
}
router = APIRouter(prefix="/products", tags=[TAG["name"]], route_class=StrictJsonRoute)
IDEMPOTENCY_SPACE = "product-imports"

# Each row names or prices its product: a new SKU without both is refused (import_invalid).
_CSV_EXAMPLE = (
    'sku,name,price,on_hand\nMUG-001,Coffee mug,12.50,100\nTEE-M-BLK,"T-shirt, M, black",19.99,40\n'
)
_NDJSON_EXAMPLE = (
    '{"sku": "MUG-001", "name": "Coffee mug", "price": "12.50", "on_hand": 100}\n'
    '{"sku": "TEE-M-BLK", "name": "T-shirt, M, black", "price": "19.99", "on_hand": 40}\n'
)
_IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            catalog_formats.CSV: {"schema": {"type": "string"}, "example": _CSV_EXAMPLE},
            catalog_formats.NDJSON: {"schema": {"type": "string"}, "example": _NDJSON_EXAMPLE},
        },
    }
}


@router.post(
    "/import",
    operation_id="products-import",
    summary="Import the catalog (upsert by SKU)",
    description="A header row of `sku`, `name`, `description`, `price`, `on_hand`, "
    "`low_stock_threshold` (only `sku` required; an empty cell changes nothing), or one JSON "
    "object per line with those keys; at most 10,000 rows. A new SKU creates a product (`name` "
    "and `price` required), a known one changes the fields given. `dry_run=true` reports what "
    "would change and writes nothing; otherwise all rows apply in one transaction, or none "
    "(422 `import_invalid`, every row's errors). `If-Match: <catalog_version>` applies only if "
    "no product changed since. See docs/sync.md.",
    response_model=CatalogImportReport,
    responses=problem_responses(409, 412, 413, 415, 422),
    openapi_extra=_IMPORT_BODY,
)
@admin_only
async def import_products(
    request: Request,
    dry_run: Annotated[bool, Query(description="Report what would change; write nothing.")] = False,
    content_type: Annotated[str | None, Header(include_in_schema=False)] = None,
    if_match: Annotated[
        str | None,
        Header(description="Apply only if the catalog's version is still this one."),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            description="Makes retries safe: the same key and body within 24 h replay the first "
            "answer (a key space of its own). Not used by a dry run, which writes nothing.",
        ),
    ] = None,
) -> Response:
    media = catalog_formats.media_type(content_type)
    body = await request.body()
    rows, unreadable = catalog_formats.read_rows(body, media)
    database = database_of(request)
    if dry_run:
        return json_response(await database.scan(catalog.preview_import, rows, unreadable))
    if idempotency_key is None:
        return json_response(await database.write(catalog.apply_import, rows, unreadable, if_match))
    answer = await database.write(
        _import_once,
        rows,
        unreadable,
        if_match,
        key=idempotency_key,
        principal=request.scope.get("state", {}).get("principal"),
        ttl=timedelta(hours=request.app.state.settings.idempotency_ttl_hours),
        request={
            "media_type": media,
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "if_match": if_match,
        },
    )
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
    return json_response(answer.body, answer.status_code, headers)


async def _import_once(
    conn: Connection,
    rows: list[catalog_formats.Row],
    unreadable: list[catalog_formats.RowError],
    if_match: str | None,
    *,
    key: str,
    principal: str | None,
    ttl: timedelta,
    request: dict[str, Any],
) -> idempotency.Answer:
    async def apply(conn: Connection) -> tuple[int, Any]:
        return 200, await catalog.apply_import(conn, rows, unreadable, if_match)

    return await idempotency.once(
        conn,
        space=IDEMPOTENCY_SPACE,
        principal=principal,
        key=key,
        request=request,
        create=apply,
        ttl=ttl,
    )


@router.get(
    "/export",
    operation_id="products-export",
    summary="Export the catalog",
    description="Every live product, streamed in id order as NDJSON (one object per line, the "
    "default) or CSV (a header row), from one snapshot of the catalog, in constant memory: "
    "the import's columns plus `id`, `committed`, `available` and `updated_at`. `ETag` is the "
    "`catalog_version` an import's `If-Match` takes. Imported again, every row is unchanged.",
    response_class=Response,
    responses={
        200: {
            "description": "The catalog, streamed.",
            "headers": {"ETag": {"schema": {"type": "string"}}},
            "content": {
                catalog_formats.NDJSON: {"schema": CatalogExportRecord.model_json_schema()},
                catalog_formats.CSV: {"schema": {"type": "string"}},
            },
        },
        **problem_responses(422),
    },
)
@allow(Role.FULFILLMENT, Role.READONLY)
async def export_products(
    request: Request,
    format: Annotated[
        Literal["ndjson", "csv"], Query(description="`ndjson` (default) or `csv`.")
    ] = "ndjson",
) -> Response:
    return ExportResponse(database_of(request), format)


# The export's answer: the version, then the rows, read in one snapshot while they are sent.
class ExportResponse(Response):
    def __init__(self, database: Database, format: str) -> None:
        super().__init__()
        self.database, self.format = database, format
        self.media = catalog_formats.CSV if format == "csv" else catalog_formats.NDJSON

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = scope.get("state", {}).get("head", False)
        async with self.database.snapshot() as conn:
            version = await catalog.catalog_version(conn)
            content_type = f"{self.media}; charset=utf-8"
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", content_type.encode()),
                        (b"etag", f'"{version}"'.encode()),
                    ],
                }
            )
            if not head:
                await self._rows(conn, send)
        await send({"type": "http.response.body", "body": b""})

    async def _rows(self, conn: Connection, send: Send) -> None:
        if self.format == "csv":
            await send(
                {
                    "type": "http.response.body",
                    "body": catalog_formats.csv_header(),
                    "more_body": True,
                }
            )
        write = catalog_formats.csv_batch if self.format == "csv" else catalog_formats.ndjson_batch
        async for rows in catalog.batches(conn):
            if gone():
                return  # the client left: stop reading
            body = write([catalog.exported(row) for row in rows])
            await send({"type": "http.response.body", "body": body, "more_body": True})
