"""What the API shows of a row, field by field, in the order of its `*Public` model.

A view's fields are declared once, by its model (app/schemas.py). A rule says how each field is
made from a table's columns (`Column`, `Money`, `Time`, `Nested` for a list the rule fills
itself, or `ShopCurrency`, the same on every row) in one mapping, and `View` checks it against
the model at import: a field of the model without its making, or a making without its field,
raises there. From that one mapping come the columns a statement selects (`select`), the JSON
object a database writes (`json_object`), and the dict Python builds from a selected row (`of`):
they cannot disagree with the model, and `tests/api` validates every response the service sends
against its model as well.

`of` is written once per view at import, as the literal dict a hand-written function would build
(these are the measured fast paths: bench/request_cost.py), not a loop over the fields per row.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from app.core.currencies import shop_currency
from app.core.formats import money_text
from app.db.base import money_text_sql, timestamp_text


@dataclass(frozen=True)
class Column:
    """A field shown as stored: `column` (`o.status`), read from the row by its bare name."""

    column: str

    def key(self, field: str) -> str:
        return field

    def select(self, field: str, dialect: str) -> str:
        bare = self.column.rpartition(".")[2]
        return self.column if bare == field else f"{self.column} AS {field}"

    def sql(self, dialect: str) -> str:
        return self.column

    def python(self, value: str) -> str:
        return value


@dataclass(frozen=True)
class Money:
    """A field shown as money text ("12.50") from a column of integer cents."""

    column: str

    def key(self, field: str) -> str:
        return self.column.rpartition(".")[2]

    def select(self, field: str, dialect: str) -> str:
        return self.column

    def sql(self, dialect: str) -> str:
        return money_text_sql(self.column, dialect)

    def python(self, value: str) -> str:
        return f"money_text({value})"


@dataclass(frozen=True)
class Time:
    """A field shown as the API's timestamp text, which the database writes from the column."""

    column: str

    def key(self, field: str) -> str:
        return field

    def select(self, field: str, dialect: str) -> str:
        return f"{timestamp_text(self.column, dialect)} AS {field}"

    def sql(self, dialect: str) -> str:
        return timestamp_text(self.column, dialect)

    def python(self, value: str) -> str:
        return value


@dataclass(frozen=True)
class Nested:
    """A list field the rule fills itself (an order's lines): `of` starts it empty."""

    def key(self, field: str) -> str:
        raise TypeError("a nested field is not read from the row")

    def select(self, field: str, dialect: str) -> str:
        raise TypeError("a nested field is not selected")

    def sql(self, dialect: str) -> str:
        raise TypeError("a nested field has no SQL of its own")

    def python(self, value: str) -> str:
        return "[]"


@dataclass(frozen=True)
class ShopCurrency:
    """The shop's currency (CURRENCY), the same on every row: `of` reads it when it makes a
    view; SQL that writes the JSON binds it as `:shop_currency` (`SHOP_CURRENCY_PARAMETER`)."""

    def key(self, field: str) -> str:
        raise TypeError("the shop's currency is not read from the row")

    def select(self, field: str, dialect: str) -> str:
        raise TypeError("the shop's currency is not selected")

    def sql(self, dialect: str) -> str:
        return "CAST(:shop_currency AS text)"

    def python(self, value: str) -> str:
        return "shop_currency()"


Making = Column | Money | Time | Nested | ShopCurrency
# The parameter a statement that writes a view's JSON (`View.json_object`) needs.
SHOP_CURRENCY_PARAMETER = "shop_currency"


def in_model_order(model: type[BaseModel], made: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """`made`'s entries in the order of `model`'s fields; raises unless it has one entry for
    each field of the model and none for anything else."""
    fields = list(model.model_fields)
    missing = [field for field in fields if field not in made]
    unknown = [name for name in made if name not in model.model_fields]
    if missing or unknown:
        raise TypeError(
            f"{model.__name__}: the view must make exactly the model's fields; "
            f"without a making: {missing}, not in the model: {unknown}"
        )
    return [(field, made[field]) for field in fields]


def json_object(
    model: type[BaseModel], made: Mapping[str, str], function: str = "json_object"
) -> str:
    """SQL writing `model`'s JSON from one SQL expression per field (checked as above)."""
    pairs = ", ".join(f"'{field}', {sql}" for field, sql in in_model_order(model, made))
    return f"{function}({pairs})"


class View:
    """How each field of `model` is made from a row of a table (checked at import)."""

    def __init__(self, model: type[BaseModel], made: Mapping[str, Making]) -> None:
        self.model = model
        self.made = in_model_order(model, made)
        self.fields = tuple(field for field, _ in self.made)
        self.of: Callable[[Mapping[str, Any]], dict[str, Any]] = self._compile()

    def select(self, dialect: str) -> str:
        """The columns a statement selects for `of` (nested fields aside)."""
        return ", ".join(
            making.select(field, dialect)
            for field, making in self.made
            if not isinstance(making, Nested | ShopCurrency)
        )

    def json_object(self, dialect: str) -> str:
        """SQL writing the view's JSON from the table's columns (SQLite's `json_object`)."""
        return json_object(self.model, {field: making.sql(dialect) for field, making in self.made})

    def _compile(self) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
        entries = ", ".join(
            f"{field!r}: "
            + making.python(
                "" if isinstance(making, Nested | ShopCurrency) else f"row[{making.key(field)!r}]"
            )
            for field, making in self.made
        )
        namespace: dict[str, Any] = {"money_text": money_text, "shop_currency": shop_currency}
        source = f"def view(row):\n    return {{{entries}}}\n"
        exec(compile(source, f"<view of {self.model.__name__}>", "exec"), namespace)  # noqa: S102
        view: Callable[[Mapping[str, Any]], dict[str, Any]] = namespace["view"]
        view.__doc__ = f"A row as the API shows it: {self.model.__name__}'s JSON."
        return view
