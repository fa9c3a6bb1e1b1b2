"""Opaque pagination cursors: base64url JSON, so clients cannot depend on what is inside."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from app.errors import InvalidInput
from app.services.storable import unstorable_reason


def encode_cursor(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Any:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInput("The `before` cursor is not one this service issued.") from exc
    # Ours hold ids and timestamps only: a NUL or a lone surrogate means it was made up, and it
    # would reach the database as a query parameter.
    if any(unstorable_reason(part) for part in _strings(value)):
        raise InvalidInput("The `before` cursor is not one this service issued.")
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value if isinstance(item, str | list) for s in _strings(item)]
    return []
