"""FastAPI's per-request parameter lookups, answered once per parameter instead.

For every parameter of every request, FastAPI (0.163) works out facts about the parameter's
declaration that never change: whether its type is a sequence, whether it is a model of
parameters, its aliases, whether it is JSON. Walking the type annotations each time was a
fifth to a third of the CPU of our GET routes (bench/README.md, "Parameter lookups"; known
upstream: fastapi/fastapi#13824). `install()` wraps those four functions of
`fastapi.dependencies.utils` with memos keyed by the parameter's field, which lives as long as
its route. What FastAPI does with the answers (validation, its 422 errors) is unchanged.

The wrapped names are FastAPI's private ones, in the pinned version; test_param_lookups.py
fails if they move or if a memo ever answers otherwise than FastAPI would.
"""

import functools
from collections.abc import Callable
from typing import Any

from fastapi.dependencies import utils

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


def install() -> None:
    """Idempotent: the app factory calls it for every app it builds."""
    for name in WRAPPED:
        current = getattr(utils, name)
        if not getattr(current, "__wrapped_by_service__", False):
            setattr(utils, name, _per_field(current))
    current = utils.field_annotation_is_sequence
    if not getattr(current, "__wrapped_by_service__", False):
        utils.field_annotation_is_sequence = _per_annotation(current)  # type: ignore[assignment]
