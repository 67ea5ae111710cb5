"""API_KEYS' entries: named keys with roles, bare keys named by position, and the entries that
stop the service at start-up (naming the entry, never its key)."""

import pytest
from pydantic import ValidationError

from app.core.access import NamedKey, Role, named_keys
from app.core.config import Settings
from app.http.api_keys import ApiKeys


def test_named_and_bare_keys():
    keys = named_keys(["shop:storefront:s3cr3t:with:colons", "bare-key", "ops:admin:k"])
    assert [(k.name, k.role, k.secret) for k in keys] == [
        ("shop", Role.STOREFRONT, "s3cr3t:with:colons"),
        ("key2", Role.ADMIN, "bare-key"),
        ("ops", Role.ADMIN, "k"),
    ]


def test_a_rotation_keeps_the_name_and_both_keys_act_as_it():
    keys = ApiKeys(named_keys(["shop:storefront:old-key", "shop:storefront:new-key"]))
    old, new = keys.authenticate([b"old-key"]), keys.authenticate([b"new-key"])
    assert old is not None and new is not None
    assert (old.name, old.role) == (new.name, new.role) == ("shop", Role.STOREFRONT)
    assert old.principal != new.principal  # Idempotency-Keys stay scoped by the key itself


SECRET = "Zq9-hidden-7Xw"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([f"Shop:storefront:{SECRET}"], "entry 1: a key's name"),
        ([f"shop:owner:{SECRET}"], "entry 1 (shop): the role is one of admin, storefront"),
        ([SECRET, "shop:storefront:"], "entry 2 (shop): the key is empty"),
        ([f"system:admin:{SECRET}"], "'system' is not a key's name"),
        ([f"shop:storefront:{SECRET}", "shop:admin:b"], "'shop' already has the role storefront"),
        (["x" * 33 + f":admin:{SECRET}"], "entry 1: a key's name"),
    ],
)
def test_a_malformed_entry_stops_the_service_naming_it_never_its_key(entries, message):
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None, api_keys=",".join(entries))
    assert message in str(raised.value)
    assert SECRET not in str(raised.value)


def test_a_short_named_key_is_refused_in_production():
    with pytest.raises(ValidationError, match="16 characters"):
        Settings(_env_file=None, app_env="production", api_keys="shop:storefront:short")
    long = "shop:storefront:" + "k" * 16
    assert Settings(_env_file=None, app_env="production", api_keys=long).named_api_keys == [
        NamedKey("shop", Role.STOREFRONT, "k" * 16)
    ]


def test_a_named_key_never_shows_its_secret():
    key = NamedKey("shop", Role.STOREFRONT, "the-secret-value")
    assert "the-secret-value" not in repr(key) and "the-secret-value" not in str(key)
