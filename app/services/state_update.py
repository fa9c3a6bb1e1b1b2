"""A thread's state changed as a node would change it, without running the graph (the Agent
Protocol's `update_state`): written through the graph, so its reducers apply, and committed
like a turn (one checkpoint, its messages in the transcript, the head moved)."""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.messages import BaseMessage, convert_to_messages
from langchain_core.runnables import RunnableConfig
from langgraph.errors import InvalidUpdateError
from langgraph.pregel import Pregel
from langgraph.types import Overwrite

from app.agent.graph import AGENT_NODE
from app.errors import InvalidInput
from app.services.run_model import StateUpdate


async def apply_update(
    graph: Pregel[Any, Any, Any, Any], config: RunnableConfig, update: StateUpdate, *, builtin: bool
) -> tuple[str, list[BaseMessage]]:
    """The new checkpoint's id, and the messages the update added."""
    values = dict(update.values)
    messages: list[BaseMessage] = []
    if "messages" in values:
        raw = values["messages"]
        try:
            messages = convert_to_messages(raw if isinstance(raw, list) else [raw])
        except (ValueError, NotImplementedError) as exc:
            raise InvalidInput(f"values.messages: {exc}") from None
        for message in messages:
            message.id = message.id or str(uuid.uuid4())
        # The built-in agent's state holds one turn: the update is that turn.
        values["messages"] = Overwrite(messages) if builtin else messages
    try:
        node = update.as_node or (AGENT_NODE if builtin else None)
        written = await graph.aupdate_state(config, values, as_node=node)
    except (ValueError, KeyError, InvalidUpdateError) as exc:  # an unknown node or key: the client's to fix
        raise InvalidInput(f"The state update does not fit the graph: {exc}") from None
    checkpoint_id = written["configurable"]["checkpoint_id"]
    assert isinstance(checkpoint_id, str)
    return checkpoint_id, messages
