"""Value types shared by the schemas: money, timestamps, ids and the contract's text limits."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import Field, PlainSerializer, StrictInt, StringConstraints

CENT = Decimal("0.01")
MAX_PRICE = Decimal("99999999.99")
MAX_STOCK = 2_147_483_647
# Ids are 32-bit integers in every table; larger path values can never match a row.
MAX_ID = 2_147_483_647


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_cents(amount: Decimal) -> int:
    return int((amount / CENT).to_integral_exact())


def from_cents(cents: int) -> Decimal:
    return (Decimal(cents) * CENT).quantize(CENT)


def _rfc3339(moment: datetime) -> str:
    """`2026-11-27T09:00:00Z`; stored times are UTC, and naive ones are read as UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="seconds") + "Z"


# Money a client sends: a JSON number or string, > 0, at most 2 decimal places.
Price = Annotated[Decimal, Field(gt=0, le=MAX_PRICE, max_digits=10, decimal_places=2)]
# An amount a payment provider reports: >= 0, at most 2 decimal places.
Amount = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2)]
# Money the service sends: always a string with two decimal places ("19.90").
MoneyOut = Annotated[
    Decimal, PlainSerializer(lambda amount: f"{amount:.2f}", return_type=str, when_used="json")
]
Timestamp = Annotated[datetime, PlainSerializer(_rfc3339, return_type=str, when_used="json")]

Sku = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"),
]
ProductName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=2000)]
StockLevel = Annotated[StrictInt, Field(ge=0, le=MAX_STOCK)]
Quantity = Annotated[StrictInt, Field(ge=1, le=10_000)]
ProductId = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]
OrderId = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]
