"""What the agent does with long-term memory: two tools and a per-turn recall.

The tools follow LangMem's design: `manage_memory` (create, update or delete one memory) and
`search_memory` (by meaning). Memories are `{"content": text}` items in the owner's
`("memories",)` namespace of the long-term store; the store is scoped to the run's owner
(app/memory/longterm.py), which the executor puts in the run config under `OWNER_KEY`, so the
model can name no other owner's memory whatever arguments it invents.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Literal

from langchain_core.messages import SystemMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.config import get_config
from langgraph.store.base import BaseStore, SearchItem

from app.lru import Lru

logger = logging.getLogger(__name__)

# Run-config key of the run's owner; "__" keeps it out of checkpoint metadata and traces.
OWNER_KEY = "__lma_owner"
MEMORY_NAMESPACE = ("memories",)
MANAGE_TOOL = "manage_memory"
SEARCH_TOOL = "search_memory"
MAX_MEMORY_CHARS = 2000


def run_owner() -> str:
    """The owner of the run being executed (read inside a graph node or tool)."""
    owner = (get_config().get("configurable") or {}).get(OWNER_KEY)
    if not isinstance(owner, str) or not owner:
        raise RuntimeError(f"the run config has no owner under {OWNER_KEY!r}; long-term memory needs one")
    return owner


def format_memories(items: Sequence[SearchItem]) -> str:
    """One line per memory; the offline model and tests read this shape back."""
    if not items:
        return "No memories found."
    return "\n".join(
        f"- [{item.key}] {item.value.get('content', '')}"
        + (f" (similarity {item.score:.2f})" if item.score is not None else "")
        for item in items
    )


def build_memory_tools(store: BaseStore) -> list[BaseTool]:
    async def manage_memory(
        content: str = "",
        action: Literal["create", "update", "delete"] = "create",
        id: str | None = None,
    ) -> str:
        if id is not None and not 0 < len(id) <= 256:
            return "A memory id is 1 to 256 characters: use one that search_memory returned."
        if action == "delete":
            if not id:
                return "To delete a memory, give its id (search for it first)."
            await store.adelete(MEMORY_NAMESPACE, id)
            return f"Deleted memory {id}."
        text = " ".join(content.split())
        if not text:
            return "Nothing to remember: `content` is empty."
        if len(text) > MAX_MEMORY_CHARS:
            return f"That is too long to remember (at most {MAX_MEMORY_CHARS} characters)."
        key = id if action == "update" and id else str(uuid.uuid4())
        await store.aput(MEMORY_NAMESPACE, key, {"content": text})
        return f"{'Updated' if action == 'update' else 'Created'} memory {key}: {text}"

    async def search_memory(query: str, limit: int = 5) -> str:
        items = await store.asearch(MEMORY_NAMESPACE, query=query, limit=max(1, min(limit, 20)))
        return format_memories(items)

    return [
        StructuredTool.from_function(
            coroutine=manage_memory,
            name=MANAGE_TOOL,
            description=(
                "Create, update or delete a long-term memory about the user, kept across conversations."
                " Create one when the user states a fact, a preference or asks you to remember"
                " something; update or delete one (by its id, from search_memory) when it changes."
            ),
        ),
        StructuredTool.from_function(
            coroutine=search_memory,
            name=SEARCH_TOOL,
            description=(
                "Search the user's long-term memories (from earlier conversations) by meaning."
                " Use it for questions about the user themselves or what they told you before."
            ),
        ),
    ]


class MemoryRecall:
    """The memories offered to the model at the start of a turn: the `limit` most similar to the
    user's message, each at least `min_similarity` similar. A failure (an embedding endpoint down)
    is logged and counted, and the turn goes on without memories."""

    def __init__(
        self,
        store: BaseStore,
        *,
        limit: int,
        min_similarity: float,
        outcome: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self._limit = limit
        self._min_similarity = min_similarity
        self._outcome = outcome or (lambda _: None)
        # Runs in flight at once, with room to spare: an entry is only reused within its run.
        self._recent: Lru[tuple[str, str], list[SearchItem]] = Lru(1024)

    async def recall(self, query: str, *, run: str | None = None) -> list[SearchItem]:
        """The memories for `query`; within one `run` (a turn calls the model several times
        around its tools) the first call's answer is reused, so a turn searches once."""
        if self._limit <= 0 or not query.strip():
            return []
        cached = self._recent.get((run, query)) if run is not None else None
        if cached is not None:
            return cached
        try:
            items = await self._store.asearch(MEMORY_NAMESPACE, query=query, limit=self._limit)
        except Exception as exc:  # noqa: BLE001 - memory is a help, never a reason to fail a turn
            logger.warning("memory recall failed, the turn goes on without memories: %s", type(exc).__name__)
            self._outcome("failed")
            return []
        found = [i for i in items if i.score is not None and i.score >= self._min_similarity]
        self._outcome("hit" if found else "miss")
        if run is not None:
            self._recent.put((run, query), found)
        return found

    @staticmethod
    def message(items: Sequence[SearchItem]) -> SystemMessage:
        return SystemMessage(
            content="What you remember about this user from earlier conversations (use it when it helps):\n"
            + format_memories(items)
        )
