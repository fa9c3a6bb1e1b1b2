"""What PostgreSQL can store and the service can serve back, checked at the edge for every transport.

Text with NUL or with an unpaired UTF-16 surrogate (a JSON `"\\ud800"` escape decodes to one)
cannot be encoded for PostgreSQL; JSON nested deeper than the serializer's limit can be stored but
never sent back. Each is refused with a 422 before anything is written, naming what is wrong and
the limit, so a client sees its own mistake instead of a 500 on every later read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from app.errors import InvalidInput
from app.settings import LimitSettings

_SURROGATE = re.compile("[\ud800-\udfff]")

# Shown in place of metadata nested deeper than allowed (a row written before the limit existed).
CLIPPED = "(nested too deep to show)"
# The deepest JSON the service sends back: MAX_METADATA_DEPTH's ceiling, well under the response
# serializer's own limit (pydantic refuses past about 250 levels).
MAX_SHOWN_DEPTH = 100


def unstorable_reason(text: str) -> str | None:
    """Why `text` cannot be stored, or None."""
    if "\x00" in text:
        return "must not contain NUL characters"
    if _SURROGATE.search(text):
        return "must not contain unpaired surrogate characters (\\ud800-\\udfff)"
    return None


def check_text(text: str, *, where: str) -> None:
    reason = unstorable_reason(text)
    if reason is not None:
        raise InvalidInput(f"{where} {reason}.")


def check_servable_json(value: Any, *, where: str) -> None:
    """What any stored JSON needs to be served back: storable strings and keys, and no deeper
    than MAX_SHOWN_DEPTH (for values with no configured limit of their own, e.g. run metadata)."""
    check_json(value, where=where, max_depth=MAX_SHOWN_DEPTH, max_keys=None)


def check_json(value: Any, *, where: str, max_depth: int, max_keys: int | None) -> None:
    """Depth, total key count, and every key and string of a JSON value, without recursion (the
    value may be nested far deeper than Python's stack)."""
    keys = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            check_text(item, where=f"{where} (a string in it)")
            continue
        if not isinstance(item, Mapping | list):
            continue
        if depth >= max_depth:
            setting = " (MAX_METADATA_DEPTH)" if max_keys is not None else ""
            raise InvalidInput(f"{where} is nested deeper than {max_depth} levels{setting}.")
        if isinstance(item, Mapping):
            keys += len(item)
            if max_keys is not None and keys > max_keys:
                raise InvalidInput(f"{where} has more than {max_keys} keys in all (MAX_METADATA_KEYS).")
            for key, child in item.items():
                check_text(str(key), where=f"{where} (a key in it)")
                pending.append((child, depth + 1))
        else:
            pending.extend((child, depth + 1) for child in item)


def clip_json(value: Any, max_depth: int = MAX_SHOWN_DEPTH) -> Any:
    """`value` with containers deeper than `max_depth` replaced by a note, so a row stored before
    the limit existed can still be listed."""
    if not isinstance(value, Mapping | list):
        return value
    if max_depth <= 0:
        return CLIPPED
    if isinstance(value, Mapping):
        return {key: clip_json(child, max_depth - 1) for key, child in value.items()}
    return [clip_json(child, max_depth - 1) for child in value]


def check_metadata(metadata: dict[str, Any] | None, limits: LimitSettings) -> None:
    """A thread's metadata, from any route that writes it: shape first (a value too deep to walk
    is refused before it is encoded), then its size."""
    if metadata is None:
        return
    check_json(
        metadata, where="metadata", max_depth=limits.max_metadata_depth, max_keys=limits.max_metadata_keys
    )
    encoded = json.dumps(metadata, ensure_ascii=False)
    if len(encoded.encode()) > limits.max_metadata_bytes:
        raise InvalidInput(f"metadata is larger than MAX_METADATA_BYTES ({limits.max_metadata_bytes} bytes).")
