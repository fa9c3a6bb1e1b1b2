"""Structured logs: one JSON object per line, with the request id of the request being served.

Fields passed in `extra=` become top-level keys. Message content is never logged unless
LOG_CONTENT is on (a debugging aid); secrets are never logged at all: settings hold them as
SecretStr, and error paths log exception types, not library messages that could echo them.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
            entry["stack"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


# Loggers whose debug lines never carry message content; every other library's may (openai and
# httpx log request bodies and headers, sse_starlette the events it sends).
_CONTENT_FREE = ("app", "uvicorn")


class ThirdPartyDebugFilter(logging.Filter):
    """Drops third-party records below INFO: with LOG_LEVEL=debug and LOG_CONTENT=false only our
    own and uvicorn's debug lines are written."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.INFO:
            return True
        return any(record.name == name or record.name.startswith(f"{name}.") for name in _CONTENT_FREE)


def configure_logging(level: str, *, json_lines: bool = True, log_content: bool = False) -> None:
    """Route every logger (ours, uvicorn's, libraries') through one JSON handler on stderr.
    Libraries log below INFO only with `log_content` (their debug lines hold request bodies)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s %(message)s")
    )
    if not log_content:
        handler.addFilter(ThirdPartyDebugFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # uvicorn's TRACE (5) has no name in `logging` until uvicorn registers it.
    root.setLevel(5 if level.lower() == "trace" else level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our own access log replaces uvicorn's (it has the route template, latency and request id).
    logging.getLogger("uvicorn.access").handlers[:] = []
    logging.getLogger("uvicorn.access").propagate = False
