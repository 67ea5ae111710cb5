"""app/http/fastapi_param_memo.py: FastAPI's per-parameter lookups answered from memos, with the
very answers FastAPI's own functions give, for every parameter of every route."""

from pathlib import Path

import pytest
from fastapi.dependencies import utils
from fastapi.routing import APIRoute

from app.http import fastapi_param_memo
from app.routers import ROUTERS

ROOT = Path(__file__).resolve().parents[2]


def _fields_of_every_route() -> list:
    fields = []
    for route in (route for router in ROUTERS for route in router.routes):
        if isinstance(route, APIRoute):
            dependant = route.dependant
            fields += [
                *dependant.path_params,
                *dependant.query_params,
                *dependant.header_params,
                *dependant.cookie_params,
                *dependant.body_params,
            ]
    return fields


def test_fastapi_calls_the_memos_under_the_names_they_replace():
    fastapi_param_memo.install()
    fastapi_param_memo.install()  # idempotent: one layer of memo, not two
    for name in (*fastapi_param_memo.WRAPPED, "field_annotation_is_sequence"):
        lookup = getattr(utils, name)
        assert lookup.__wrapped_by_service__
        assert not getattr(lookup.__wrapped__, "__wrapped_by_service__", False), name


def test_the_memos_answer_what_fastapi_would_for_every_parameter():
    fields = _fields_of_every_route()
    assert len(fields) > 20
    for field in fields:
        for name in fastapi_param_memo.WRAPPED:
            lookup = getattr(utils, name)
            assert lookup(field) == lookup.__wrapped__(field), (name, field.name)
            assert lookup(field) == lookup.__wrapped__(field)  # the memo's answer, again
        sequence = utils.field_annotation_is_sequence
        annotation = field.field_info.annotation
        assert sequence(annotation) == sequence.__wrapped__(annotation), field.name
    aliases = utils._get_param_aliases
    for field in fields:
        converted = aliases.__wrapped__(field, convert_underscores=True)
        assert aliases(field, convert_underscores=True) == converted, field.name
    in_stock = next(f for f in fields if f.name == "in_stock")
    # The option is part of the key: the same field, asked both ways, answers both ways.
    assert aliases(in_stock) == [("in_stock", "in_stock")]
    assert aliases(in_stock, convert_underscores=True) == [("in_stock", "in-stock")]


def test_an_unverified_fastapi_is_refused_loudly_and_left_unpatched(monkeypatch):
    import fastapi

    monkeypatch.setattr(fastapi, "__version__", "0.999.0")
    before = {name: getattr(utils, name) for name in fastapi_param_memo.WRAPPED}
    with pytest.raises(fastapi_param_memo.UnverifiedFastAPI, match="0.999.0"):
        fastapi_param_memo.install()
    assert {name: getattr(utils, name) for name in fastapi_param_memo.WRAPPED} == before


def test_the_pinned_fastapi_is_the_verified_one():
    import fastapi

    pinned = next(
        line.split("==")[1].split()[0]  # a hashed lock continues the line
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.startswith("fastapi==")
    )
    assert pinned == fastapi.__version__
    assert pinned in fastapi_param_memo.VERIFIED_FASTAPI
