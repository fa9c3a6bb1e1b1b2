"""Reading Server-Sent Events in tests: (event, id, JSON data) per frame, comments skipped."""

from __future__ import annotations

import json
from typing import Any

Frame = tuple[str, str, dict[str, Any]]


def parse_sse(text: str) -> list[Frame]:
    events: list[Frame] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line.startswith(":") or ":" not in line:
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        if "event" in fields:
            events.append((fields["event"], fields.get("id", ""), json.loads(fields["data"])))
    return events
