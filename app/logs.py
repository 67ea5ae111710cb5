"""Logs as one JSON object per line, each carrying the id of the request it belongs to.

What is logged is chosen at each call site: method, route, status, ids and amounts. Headers,
bodies, API keys and webhook secrets are never passed to a logger, so they never reach a line.
"""

import logging
import sys
from contextvars import ContextVar

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

# The id of the request being served; set by app.observability for the request's duration.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# uvicorn's own loggers print plain text by default; they join the JSON stream too.
_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


# Adds the current request's id to every record that does not carry one already.
class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


# Writes to whatever sys.stderr is at the time, so a replaced stderr (tests) is followed.
class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def business_event(logger: logging.Logger, event: str, **fields: object) -> None:
    """One INFO line for a business event (`order_placed`, `order_paid`...) with its fields."""
    logger.info(event, extra={"event": event, **fields})


def json_formatter() -> JsonFormatter:
    return JsonFormatter(
        ["levelname", "name", "message"],
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp=True,
        # uvicorn adds an ANSI-coloured copy of its message; the plain one is enough.
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
    )


def configure_logging(level: str) -> None:
    """Send the app's and uvicorn's logs to stderr as JSON lines at `level` (idempotent)."""
    handler = _StderrHandler()
    handler.set_name("app-json")
    handler.setFormatter(json_formatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "app-json"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        server_logger.handlers = []
        server_logger.propagate = True
