"""The private parts of langgraph-checkpoint(-postgres) the memory layer relies on, in one place.

`app/memory/delta_saver.py` subclasses `AsyncPostgresSaver` and reads and writes its tables in
its layout. What it takes from the library beyond the public saver interface is named here, and
`tests/unit/test_langgraph_internals.py` fails loudly, naming what moved, when an upgrade changes
any of it (pyproject.toml bounds both packages' versions for the same reason).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.postgres.base import BasePostgresSaver
from langgraph.checkpoint.serde._msgpack import SAFE_MSGPACK_TYPES
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import EXT_PYDANTIC_V2, JsonPlusSerializer
from langgraph.checkpoint.serde.types import TASKS
from langgraph.checkpoint.serde.types import _DeltaSnapshot as DeltaSnapshot

# A `DeltaChannel`'s snapshot value: the stock saver stores it as a blob behind an inline `true`.
# Pending sends live in this channel (a checkpoint older than format 4 gets them migrated in).
__all__ = [
    "EXT_PYDANTIC_V2",
    "SAFE_MSGPACK_TYPES",
    "SAVER_METHODS",
    "SAVER_SQL",
    "TASKS",
    "DeltaSnapshot",
    "msgpack_ext_hook",
    "stock_select_with_blobs",
]

# Private methods of the stock saver that the subclass calls, with their parameters.
SAVER_METHODS: dict[str, tuple[str, ...]] = {
    # Folds a pre-v4 checkpoint's pending sends into its values (reads stay exact on old rows).
    "_migrate_pending_sends": ("self", "pending_sends", "checkpoint", "channel_values"),
    # Decodes a checkpoint's pending writes from the rows of `SELECT_SQL`.
    "_load_writes": ("self", "writes"),
    # The WHERE clause of `alist` (config, metadata filter, before).
    "_search_where": ("self", "config", "filter", "before"),
}

# Class attributes (SQL) of the stock saver that the subclass runs, and the columns it reads.
SAVER_SQL: dict[str, tuple[str, ...]] = {
    "SELECT_SQL": ("checkpoint_ns", "parent_checkpoint_id", "channel_values", "pending_writes"),
    "SELECT_PENDING_SENDS_SQL": ("checkpoint_id", "sends"),
    "UPSERT_CHECKPOINT_BLOBS_SQL": ("checkpoint_blobs", "DO NOTHING"),
    "UPSERT_CHECKPOINTS_SQL": ("checkpoints", "DO UPDATE"),
}

STOCK_SAVER = AsyncPostgresSaver


# Where the stock `SELECT_SQL` reads a checkpoint's blobs, as `stock_select_with_blobs` replaces it.
_BLOBS_START = "(\n        select array_agg(array[bl.channel"
_BLOBS_END = ") as channel_values,"


def stock_select_with_blobs(subquery: str) -> str:
    """The stock saver's `SELECT_SQL` with its blobs subquery replaced by `subquery` (which must
    return the same `channel_values` column): every other column stays the library's own."""
    head, start, rest = BasePostgresSaver.SELECT_SQL.partition(_BLOBS_START)
    _, end, tail = rest.partition(_BLOBS_END)
    if not (start and end):
        raise RuntimeError(
            "langgraph-checkpoint-postgres changed SELECT_SQL: update app/memory/langgraph_internals.py"
        )
    return f"{head}({subquery}{_BLOBS_END}{tail}"


def msgpack_ext_hook(serde: SerializerProtocol) -> Callable[[int, bytes], Any] | None:
    """The msgpack extension hook `serde.loads_typed` decodes with (its allowlist built in), when
    `serde` is the library's own serializer; None for any other (an encrypting one, say)."""
    if type(serde) is not JsonPlusSerializer:
        return None
    hook: Callable[[int, bytes], Any] = serde._unpack_ext_hook
    return hook
