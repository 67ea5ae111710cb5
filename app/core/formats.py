"""Value types shared by the schemas: money, timestamps, ids and the contract's text limits."""

import itertools
import re
import unicodedata
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    PlainSerializer,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
)

CENT = Decimal("0.01")
MAX_PRICE = Decimal("99999999.99")
MAX_STOCK = 2_147_483_647
# Ids are 32-bit integers in every table; larger path values can never match a row.
MAX_ID = 2_147_483_647


# A currency as a client writes it: three ASCII letters, either case (ISO writes `USD`,
# Stripe `usd`); whether it is the shop's is app/core/currencies.py's to say.
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{3}$")]


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_cents(amount: Decimal) -> int:
    return int((amount / CENT).to_integral_exact())


def from_cents(cents: int) -> Decimal:
    return (Decimal(cents) * CENT).quantize(CENT)


def rfc3339(moment: datetime) -> str:
    """`2026-11-27T09:00:00Z`; stored times are UTC, and naive ones are read as UTC."""
    if moment.tzinfo is not None and moment.utcoffset():
        moment = moment.astimezone(UTC)
    # isoformat is C and several times faster than strftime; its first 19 characters are
    # `YYYY-MM-DDTHH:MM:SS` for every year the service stores.
    return moment.isoformat()[:19] + "Z"


_rfc3339 = rfc3339


def money_text(cents: int) -> str:
    """Cents as the API sends money: `"19.90"` (as `f"{from_cents(cents):.2f}"`, faster)."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


_RFC3339 = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)


def _rfc3339_text(value: Any) -> Any:
    # pydantic alone would also read `0.5` as a Unix time: the contract says RFC 3339.
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 timestamp with an offset, like 2026-11-27T09:00:00Z")
    return value


def _in_utc(moment: datetime) -> datetime:
    """The moment in UTC; one that UTC's calendar cannot hold (`0001-01-01T00:00:00+01:00` is
    in year 0) becomes its first or last microsecond, which no stored time is before or after,
    so a filter by it selects what the moment itself would."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        edge = datetime.min if moment.year == 1 else datetime.max
        return edge.replace(tzinfo=UTC)


# A timestamp a client sends (a query's `created_after`): RFC 3339, with its offset; the
# service gets it in UTC.
Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_in_utc)]


# Money sent as a string is plain ASCII digits with at most 2 decimal places ("19.99"):
# Python's Decimal would also take " 1e1 ", "1_0" or Arabic-Indic digits, which no client means.
MONEY_TEXT = r"^[0-9]+(\.[0-9]{1,2})?$"


def _plain_money_text(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(MONEY_TEXT, value):
        raise ValueError('money as a string is digits with at most 2 decimal places, like "19.99"')
    return value


# What OpenAPI says of a price, as exactly as JSON Schema can: a number in cents, or a string.
_PRICE_SCHEMA = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0, "maximum": float(MAX_PRICE), "multipleOf": 0.01},
        {"type": "string", "pattern": r"^(?!0+(\.0+)?$)[0-9]{1,8}(\.[0-9]{1,2})?$"},
    ],
    "description": "More than 0, at most 99999999.99, at most 2 decimal places; "
    'a JSON number (19.99) or a string ("19.99").',
}
# Money a client sends: a JSON number or string, > 0, at most 2 decimal places.
Price = Annotated[
    Decimal,
    BeforeValidator(_plain_money_text),
    Field(gt=0, le=MAX_PRICE, max_digits=10, decimal_places=2),
    WithJsonSchema(_PRICE_SCHEMA, mode="validation"),
]
# An amount a payment provider reports: >= 0, at most 2 decimal places.
Amount = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2)]
# Money the service sends: always a string with two decimal places ("19.90").
MONEY_OUT_PATTERN = r"^-?[0-9]+\.[0-9]{2}$"
MoneyOut = Annotated[
    Decimal,
    PlainSerializer(lambda amount: f"{amount:.2f}", return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "pattern": MONEY_OUT_PATTERN, "examples": ["19.99"]},
        mode="serialization",
    ),
]
# A moment the service sends: RFC 3339 in UTC, to the second ("2026-11-27T09:00:00Z").
Timestamp = Annotated[
    datetime,
    PlainSerializer(_rfc3339, return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "examples": ["2026-11-27T09:00:00Z"]},
        mode="serialization",
    ),
]

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
Sku = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=SKU_PATTERN)]
# Text is stored as given, except NUL, which PostgreSQL cannot store in a text column.
TEXT_PATTERN = r"^[^\u0000]*$"
# What a name is trimmed of: Unicode's White_Space characters. The pattern spells them out so
# that the service, Swagger UI and fuzzers read it alike (regex `\s` differs between them).
_SPACES = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + ("\u2028\u2029\u202f\u205f\u3000")
)
# What a name may not consist of alone: characters that show nothing. Spaces and controls
# (categories Z*, Cc), format characters (Cf: zero-width spaces and joiners, bidi marks, tags),
# the default-ignorable code points of other categories (variation selectors, the combining
# grapheme joiner, Hangul fillers, unassigned ignorables) and the blank Braille pattern; not
# the format characters that are drawn (Unicode's Prepended_Concatenation_Mark, such as the
# Arabic number sign). Every such character lies below U+20000 or in plane 14.
_BLANK_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
_DRAWN = frozenset(
    [*range(0x0600, 0x0606), 0x06DD, 0x070F, 0x0890, 0x0891, 0x08E2, 0x110BD, 0x110CD]
)
_IGNORABLE = [
    (0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F), (0x2065, 0x2065),
    (0x2800, 0x2800), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8),
    (0xE0000, 0xE0FFF),
]  # fmt: skip


def _invisible_ranges() -> list[tuple[int, int]]:
    points = {
        point
        for point in itertools.chain(range(0x20000), range(0xE0000, 0xE1000))
        if unicodedata.category(chr(point)) in _BLANK_CATEGORIES and point not in _DRAWN
    }
    points.update(point for low, high in _IGNORABLE for point in range(low, high + 1))
    points.update(map(ord, _SPACES))
    ranges: list[tuple[int, int]] = []
    for point in sorted(points):
        if ranges and ranges[-1][1] == point - 1:
            ranges[-1] = (ranges[-1][0], point)
        else:
            ranges.append((point, point))
    return ranges


def _class(ranges: list[tuple[int, int]], escape: str) -> str:
    """The inside of a character class of `ranges`, each code point written `escape % point`."""
    return "".join(
        escape % low if low == high else f"{escape % low}-{escape % high}" for low, high in ranges
    )


_INVISIBLE = _invisible_ranges()
_VISIBLE = re.compile("[^" + _class(_INVISIBLE, "\\U%08x") + "]")
# The schema's pattern (JSON Schema regexes are ECMA-262's: `\uXXXX` escapes, BMP only): a
# name holds a character that is neither NUL nor invisible. Astral invisibles (tags, a few
# format characters) are refused by the validator alone.
_BMP_INVISIBLE = [(low, min(high, 0xFFFF)) for low, high in _INVISIBLE if low <= 0xFFFF]
_SPACE_CLASS = _class(_BMP_INVISIBLE, "\\u%04x")
NAME_PATTERN = rf"^[^\u0000]*[^\u0000{_SPACE_CLASS}][^\u0000]*$"


def _no_nul(text: str) -> str:
    """Text PostgreSQL can store: no NUL, and valid Unicode (no lone surrogates, which a JSON
    `\\ud800` escape can produce)."""
    if "\x00" in text:
        raise ValueError("must not contain the NUL character")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return text


# Free text of a request body (ids from other systems, notes): stored as given, if storable.
StorableText = Annotated[str, AfterValidator(_no_nul)]


def _name(text: str) -> str:
    trimmed = _no_nul(text).strip(_SPACES)
    if not trimmed:
        raise ValueError("must not be blank")
    if not _VISIBLE.search(trimmed):
        raise ValueError("must hold a visible character, not only invisible ones")
    return trimmed


# A name: at most 200 characters as sent, not blank, stored trimmed. The validator says why a
# name is refused in words; the schema states the same rule as a pattern.
ProductName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    AfterValidator(_name),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "pattern": NAME_PATTERN,
            "description": "Trimmed; not blank.",
        }
    ),
]
Description = Annotated[
    str,
    StringConstraints(max_length=2000),
    AfterValidator(_no_nul),
    WithJsonSchema({"type": "string", "maxLength": 2000, "pattern": TEXT_PATTERN}),
]


def _whole_number(value: Any) -> Any:
    """JSON has one number type: `5.0` is the integer 5 (as JSON Schema says); strings stay out."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Counts and ids in a request body: a JSON integer (or 5.0), never a string or a boolean.
_WHOLE = BeforeValidator(_whole_number)
StockLevel = Annotated[StrictInt, Field(ge=0, le=MAX_STOCK), _WHOLE]
Quantity = Annotated[StrictInt, Field(ge=1, le=10_000), _WHOLE]
# A product's low-stock threshold: alerts when `available` falls below it.
Threshold = Annotated[StrictInt, Field(ge=0, le=MAX_STOCK), _WHOLE]
ProductId = Annotated[StrictInt, Field(ge=1, le=MAX_ID), _WHOLE]
OrderId = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]

# A stock adjustment's change: a whole number of units, never 0 (which would record nothing).
MAX_DELTA = 1_000_000_000


def _not_zero(delta: int) -> int:
    if delta == 0:
        raise ValueError("must not be 0: an adjustment changes stock")
    return delta


StockDelta = Annotated[
    StrictInt,
    Field(ge=-MAX_DELTA, le=MAX_DELTA, json_schema_extra={"not": {"const": 0}}),
    _WHOLE,
    AfterValidator(_not_zero),
]
# What an adjustment refers to (a purchase order, a return number), and a note on it.
Reference = Annotated[
    str,
    StringConstraints(max_length=128),
    AfterValidator(_no_nul),
    WithJsonSchema({"type": "string", "maxLength": 128, "pattern": TEXT_PATTERN}),
]
Note = Annotated[
    str,
    StringConstraints(max_length=500),
    AfterValidator(_no_nul),
    WithJsonSchema({"type": "string", "maxLength": 500, "pattern": TEXT_PATTERN}),
]


# A shipment's carrier and tracking number, as the carrier writes them.
Carrier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(_no_nul),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 64, "pattern": TEXT_PATTERN}),
]
TrackingNumber = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128),
    AfterValidator(_no_nul),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 128, "pattern": TEXT_PATTERN}),
]


def _https_url(url: str) -> str:
    parsed = urlsplit(url)
    if parsed.scheme != "https" or not parsed.hostname or any(c.isspace() for c in url):
        raise ValueError("must be an https URL")
    return url


# Where a customer follows a shipment: an https URL, kept as sent.
TrackingUrl = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2048),
    AfterValidator(_https_url),
    WithJsonSchema({"type": "string", "format": "uri", "maxLength": 2048, "pattern": "^https://"}),
]

# Money given back: a JSON number or string, > 0, at most 2 decimal places.
RefundAmount = Annotated[
    Decimal,
    BeforeValidator(_plain_money_text),
    Field(gt=0, max_digits=18, decimal_places=2),
]
# The payment provider's id of a refund (`re_…` on Stripe): printable text.
ProviderRefundId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$"),
]
