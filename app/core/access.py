"""Who may call what, and who did it: the roles of API keys, the named keys of API_KEYS, and the
actor every change records.

An entry of API_KEYS is `name:role:key` (a named key) or a bare `key` (named `key<N>` by its
position from 1, role `admin`: deployments from before roles keep working). Two entries may
share a name (the old and the new key while rotating: the name, and so the actor, stays), but
never with two roles.

The actor is the name on a change: the key's name, or `webhook` (the payment webhook), `stripe`
(Stripe's webhook), `system` (expiry and the other chores), `anonymous` (no API_KEYS). The
request path (app/http/) sets it for each request; a chore runs with the default, `system`. The
rules that record a change (the ledger's movements, the outbox's events) read it with
`current_actor()`: the database seam runs each unit of work in its caller's context
(app/db/sqlite.py copies it into the writer's turn), so the actor reaches the unit that records
the change without every rule passing it along.
Movements and events written before actors existed show `unknown`.
"""

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from enum import StrEnum


# The roles a key can have (docs/operations.md "Keys and roles" says which key goes where).
class Role(StrEnum):
    ADMIN = "admin"  # every call
    STOREFRONT = "storefront"  # read products; place, read and cancel orders
    FULFILLMENT = "fulfillment"  # read products and orders; stock adjustments, counts, movements
    READONLY = "readonly"  # every GET and HEAD


SYSTEM = "system"
WEBHOOK = "webhook"  # POST /webhooks/payment
STRIPE = "stripe"  # POST /webhooks/stripe
ANONYMOUS = "anonymous"
UNKNOWN = "unknown"  # movements and events recorded before actors existed (migration 0009)
# Actors that are not keys: no key may take one of these names.
RESERVED_NAMES = frozenset({SYSTEM, WEBHOOK, STRIPE, ANONYMOUS, UNKNOWN})
_NAME = re.compile(r"[a-z0-9_-]{1,32}")

_ACTOR: ContextVar[str] = ContextVar("actor", default=SYSTEM)


def current_actor() -> str:
    """Who makes the change being recorded (`system` outside any request)."""
    return _ACTOR.get()


def set_actor(actor: str) -> Token[str]:
    """Name the actor of what follows in this context; the token restores the one before."""
    return _ACTOR.set(actor)


def reset_actor(token: Token[str]) -> None:
    _ACTOR.reset(token)


@contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Changes made inside the block record `actor`."""
    token = _ACTOR.set(actor)
    try:
        yield
    finally:
        _ACTOR.reset(token)


# One key of API_KEYS: its name, its role and the secret itself.
@dataclass(frozen=True)
class NamedKey:
    name: str
    role: Role
    secret: str = ""

    def __repr__(self) -> str:  # never the secret
        return f"NamedKey(name={self.name!r}, role={self.role.value!r})"


def named_keys(entries: Iterable[str]) -> list[NamedKey]:
    """The keys of API_KEYS' entries. An entry with two colons is `name:role:key` (the key may
    hold more colons); any other is a bare key. ValueError naming the entry by its position
    (never its secret) when one is malformed."""
    keys: list[NamedKey] = []
    roles: dict[str, Role] = {}
    for position, entry in enumerate(entries, start=1):
        if entry.count(":") >= 2:
            name, role, secret = entry.split(":", 2)
            if not _NAME.fullmatch(name):
                raise ValueError(
                    f"API_KEYS entry {position}: a key's name is 1-32 of a-z 0-9 _ - "
                    "(name:role:key)"
                )
            if role not in set(Role):
                raise ValueError(
                    f"API_KEYS entry {position} ({name}): the role is one of {', '.join(Role)}"
                )
            if not secret:
                raise ValueError(f"API_KEYS entry {position} ({name}): the key is empty")
            key = NamedKey(name, Role(role), secret)
        else:
            key = NamedKey(f"key{position}", Role.ADMIN, entry)
        if key.name in RESERVED_NAMES:
            raise ValueError(f"API_KEYS entry {position}: {key.name!r} is not a key's name")
        if roles.setdefault(key.name, key.role) is not key.role:
            raise ValueError(
                f"API_KEYS entry {position}: {key.name!r} already has the role {roles[key.name]}"
            )
        keys.append(key)
    return keys
