"""Validation of a turn's input messages, shared by every transport (JSON API, /invocations,
the MLflow model), so the same limits and the same messages apply everywhere."""

from __future__ import annotations

from collections.abc import Sequence

from app.errors import InvalidInput
from app.services.storable import check_text
from app.settings import LimitSettings


def check_turn_messages(messages: Sequence[tuple[str, str]], limits: LimitSettings) -> None:
    if not messages:
        raise InvalidInput("A turn needs at least one message.")
    if len(messages) > limits.max_messages_per_request:
        raise InvalidInput(
            f"At most {limits.max_messages_per_request} messages per turn (MAX_MESSAGES_PER_REQUEST)."
        )
    for _, content in messages:
        if not content.strip():
            raise InvalidInput("Message content must not be empty.")
        check_text(content, where="Message content")
        if len(content) > limits.max_content_chars:
            raise InvalidInput(
                f"Message content is longer than MAX_CONTENT_CHARS ({limits.max_content_chars})."
            )
    if messages[-1][0] != "user":
        raise InvalidInput("The last message of a turn must have the role 'user'.")
