"""The protocol's message dicts are exactly what LangChain's own `model_dump()` gives."""

from __future__ import annotations

import uuid

from app.agent.messages import stored_to_langchain
from app.api.protocol.shapes import lc_message
from app.memory.transcript import StoredMessage


def test_message_dicts_match_langchain() -> None:
    run = uuid.uuid4()
    rows = [
        StoredMessage(0, "m0", run, "user", "Who committed the latest malware threat?", None, None, None),
        StoredMessage(
            1,
            "m1",
            run,
            "assistant",
            "",
            None,
            [{"id": "c1", "name": "get_user_info", "args": {"ip": "1.2.3.4"}}],
            None,
        ),
        StoredMessage(2, "m2", run, "tool", "user_name: Ada", "get_user_info", None, "c1"),
        StoredMessage(3, "m3", run, "assistant", "Ada did.", None, None, None),
        StoredMessage(4, "m4", run, "system", "Be brief.", None, None, None),
    ]
    for row in rows:
        assert lc_message(row) == stored_to_langchain(row).model_dump()
