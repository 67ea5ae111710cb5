"""FastAPI's per-request parameter lookups, answered once per parameter instead.

For every parameter of every request, FastAPI works out facts about the parameter's declaration
that never change: whether its type is a sequence, whether it is a model of parameters, its
aliases, whether it is JSON. `install()` wraps those four functions of
`fastapi.dependencies.utils` with memos keyed by the parameter's field, which lives as long as
its route. What FastAPI does with the answers (validation, its 422 errors) is unchanged. A memo
like these was proposed upstream (fastapi/fastapi#13824) and closed without being merged, so
the lookups still run per request in the pinned version.

What it saves is measured by bench/param_memo.py, same run, with and without the memos
(bench/README.md "Parameter lookups"). The wrapped names are FastAPI's private ones:
`install()` refuses a FastAPI version not in `VERIFIED_FASTAPI` (an upgrade fails at start-up,
loudly, instead of silently patching functions that may have changed), and
tests/unit/test_param_lookups.py fails if the names move or if a memo ever answers otherwise
than FastAPI would. To verify a new version: run that test and the bench, then add it here.
"""

import functools
from collections.abc import Callable
from typing import Any

import fastapi
from fastapi.dependencies import utils

# The FastAPI versions these memos were checked against (names, signatures, answers).
VERIFIED_FASTAPI = frozenset({"0.163.2"})
WRAPPED = ("_get_param_model", "_get_param_aliases", "_is_json_field")


def _per_field(original: Callable[..., Any]) -> Callable[..., Any]:
    # Fields are dataclasses (unhashable): key by identity, and keep the field so its id
    # cannot be reused by another object while the memo holds it.
    memo: dict[tuple[int, tuple[Any, ...]], tuple[Any, Any]] = {}

    @functools.wraps(original)
    def lookup(field: Any, **options: Any) -> Any:
        key = (id(field), tuple(sorted(options.items())))
        hit = memo.get(key)
        if hit is not None and hit[0] is field:
            return hit[1]
        value = original(field, **options)
        memo[key] = (field, value)
        return value

    lookup.__wrapped_by_service__ = True  # type: ignore[attr-defined]
    return lookup


def _per_annotation(original: Callable[[Any], bool]) -> Callable[[Any], bool]:
    cached = functools.lru_cache(maxsize=1024)(original)

    @functools.wraps(original)
    def lookup(annotation: Any) -> bool:
        try:
            return cached(annotation)
        except TypeError:  # an unhashable annotation: ask every time
            return original(annotation)

    lookup.__wrapped_by_service__ = True  # type: ignore[attr-defined]
    return lookup


class UnverifiedFastAPI(RuntimeError):
    """The installed FastAPI is not one the memos were verified against."""


def install() -> None:
    """Idempotent: the app factory calls it for every app it builds. Raises
    `UnverifiedFastAPI` on a FastAPI version not in `VERIFIED_FASTAPI`."""
    if fastapi.__version__ not in VERIFIED_FASTAPI:
        raise UnverifiedFastAPI(
            f"app/http/fastapi_param_memo.py patches FastAPI's private parameter lookups and "
            f"was verified against FastAPI {', '.join(sorted(VERIFIED_FASTAPI))}, not "
            f"{fastapi.__version__}: run tests/unit/test_param_lookups.py and "
            f"bench/param_memo.py on it, then add it to VERIFIED_FASTAPI (or pin FastAPI back)"
        )
    for name in WRAPPED:
        current = getattr(utils, name)
        if not getattr(current, "__wrapped_by_service__", False):
            setattr(utils, name, _per_field(current))
    current = utils.field_annotation_is_sequence
    if not getattr(current, "__wrapped_by_service__", False):
        utils.field_annotation_is_sequence = _per_annotation(current)  # type: ignore[assignment]
