"""Logs as one JSON object per line, each carrying the id of the request it belongs to.

Every line goes through one writer, as one `os.write` of one whole line, so lines from several
workers never interleave. The per-request lines (the access line, business events) are built as
dicts and encoded with orjson: a `logging` record and its formatter cost more than the rest of the
request path together (bench/README.md "One request-path layer"). Other records (warnings, errors,
uvicorn's start-up lines) go through `logging`, formatted with the same fields, to the same writer.

What is logged is chosen at each call site: method, route, status, ids and amounts. Headers,
bodies, API keys and webhook secrets are never passed to a logger, and credential-like query
parameters are redacted (`redact_query`), so none of them reaches a line.
"""

import logging
import os
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import unquote_plus

import orjson
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

# The id of the request being served; set by app.http.request_path for the request's duration.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# uvicorn's own loggers print plain text by default; they join the JSON stream too. Its access
# logger is silenced: the app writes the one access line per request (app/http/request_path.py).
_SERVER_LOGGERS = ("uvicorn", "uvicorn.error")
_SERVER_ACCESS_LOGGER = "uvicorn.access"
# A query parameter whose name contains one of these is logged as `name=[redacted]`.
_CREDENTIAL_WORDS = ("key", "token", "secret", "pass", "signature", "auth", "credential", "sig")
REDACTED = "[redacted]"
# Lines stay under PIPE_BUF (4096 bytes), the size a pipe writes atomically.
_MAX_FIELD_CHARS = 512


# Writes whole lines to whatever sys.stderr is at the time, so a replaced stderr (tests) is
# followed: by file descriptor when it has one, through the stream otherwise.
class LineWriter:
    def __init__(self) -> None:
        self._stream: TextIO | None = None
        self._fd = -1

    def write(self, line: bytes) -> None:
        stream = sys.stderr
        if stream is not self._stream:
            self._stream, self._fd = stream, _fileno(stream)
        if self._fd < 0:
            stream.write(line.decode())
            stream.flush()
            return
        try:
            written = os.write(self._fd, line)
            while written < len(line):  # only a line over the pipe's buffer is split
                written += os.write(self._fd, line[written:])
        except OSError:
            pass  # a closed or full stderr must not fail the request being logged


def _fileno(stream: TextIO) -> int:
    try:
        stream.flush()
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return -1


WRITER = LineWriter()


def write_line(level: str, logger: str, message: str, fields: dict[str, Any]) -> None:
    """One JSON line with the fields every line has, then `fields`."""
    record = {
        "level": level,
        "logger": logger,
        "message": message,
        "request_id": request_id_var.get(),
        "timestamp": datetime.now(UTC).isoformat(),
        **fields,
    }
    WRITER.write(orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE))


def business_event(logger: logging.Logger, event: str, **fields: object) -> None:
    """One INFO line for a business event (`order_placed`, `order_paid`...) with its fields."""
    if logger.isEnabledFor(logging.INFO):
        write_line("INFO", logger.name, event, {"event": event, **fields})


def redact_query(query: bytes) -> str:
    """The query string with credential-like parameters' values replaced, for the logs."""
    parts = []
    for part in query.decode("latin-1").split("&"):
        name, equals, _value = part.partition("=")
        lowered = unquote_plus(name).lower()
        if equals and any(word in lowered for word in _CREDENTIAL_WORDS):
            part = f"{name}={REDACTED}"
        parts.append(part)
    return clip("&".join(parts))


def clip(text: str) -> str:
    return text if len(text) <= _MAX_FIELD_CHARS else text[:_MAX_FIELD_CHARS] + "…"


# Adds the current request's id to every record that does not carry one already.
class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


# Hands each formatted record to the one line writer. Also uvicorn's from its first line on,
# in every process (app/core/log_config.json, `--log-config` in run.sh): its supervisor, which
# never imports the app, included.
class LineHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            WRITER.write((self.format(record) + "\n").encode())
        except Exception:
            self.handleError(record)


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
    handler = LineHandler()
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
    # Whatever uvicorn was started with, its access line would be a second line per request.
    access = logging.getLogger(_SERVER_ACCESS_LOGGER)
    access.handlers, access.propagate = [], False
