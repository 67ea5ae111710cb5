"""The shop's currency: which ISO 4217 codes it may be, and the one it is.

The service's money has exactly two decimal places (`app/core/formats.py`), stored as integer
minor units, and a payment provider counts amounts in the currency's minor units (Stripe's
`amount_received`: cents for USD). So the shop's currency must be one whose minor unit is a
hundredth: `CURRENCY` (app/core/config.py) accepts the codes of `TWO_DECIMAL` and refuses, at
start, the currencies with 0 or 3 decimal places (JPY, KRW, KWD...), naming why, rather than
showing yen with cents or taking a payment a hundred times too large.

A shop has one currency for every product and order, so it is the process's: the app sets it
from its settings when it is made (`use`), and every view shows `shop_currency()`.
"""

from app.core.errors import ApiError

# ISO 4217 codes whose minor unit is 1/100 (and that Stripe counts in hundredths as well).
TWO_DECIMAL = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN
    BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS
    GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR
    LRD LSL MAD MDL MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB
    PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN
    SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VED VES WST XCD XCG YER ZAR
    ZMW ZWG
    """.split()
)
# Currencies the service refuses, with their decimal places: zero-decimal (MGA too, which
# Stripe counts in whole units although ISO gives it 2) and three-decimal ones.
OTHER_DECIMALS: dict[str, int] = {
    **dict.fromkeys(
        "BIF CLP DJF GNF ISK JPY KMF KRW MGA PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0
    ),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys("CLF UYW".split(), 4),
}
DEFAULT = "USD"

_shop = {"currency": DEFAULT}


def checked(code: str) -> str:
    """`code` in upper case if the shop may use it; ValueError saying why not otherwise."""
    upper = code.strip().upper()
    if upper in TWO_DECIMAL:
        return upper
    if upper in OTHER_DECIMALS:
        raise ValueError(
            f"{upper} has {OTHER_DECIMALS[upper]} decimal places; the service's money has 2, "
            "so it cannot be the shop's currency"
        )
    raise ValueError(f"{code!r} is not an ISO 4217 currency code the service knows")


def use(code: str) -> None:
    """Make `code` (already `checked`) the shop's currency for this process."""
    _shop["currency"] = checked(code)


def shop_currency() -> str:
    """The shop's currency, as every product and order shows it (`USD`)."""
    return _shop["currency"]


def is_shop_currency(code: str) -> bool:
    """Whether a currency a client sent is the shop's: ISO writes codes in upper case, Stripe
    in lower case, so the comparison ignores case."""
    return code.upper() == _shop["currency"]


def require_shop_currency(code: str | None) -> None:
    """422 `currency_mismatch` unless `code` (sent by a client; None: not sent) is the shop's."""
    if code is not None and not is_shop_currency(code):
        raise ApiError(
            "currency_mismatch",
            f"The currency {code.upper()} is not the shop's; it sells in {shop_currency()}.",
            currency=code.upper(),
            shop_currency=shop_currency(),
        )
