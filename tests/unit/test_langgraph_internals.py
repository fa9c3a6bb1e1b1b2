"""app/memory/delta_saver.py relies on private parts of langgraph's Postgres saver (named in
app/memory/langgraph_internals.py); this fails loudly, naming what moved, when an upgrade
changes them."""

from __future__ import annotations

import inspect

import ormsgpack
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.postgres.base import BasePostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from app.memory.blob_deltas import SELECT_CHECKPOINTS_SQL
from app.memory.checkpointer import PooledPostgresSaver
from app.memory.langgraph_internals import (
    EXT_PYDANTIC_V2,
    SAFE_MSGPACK_TYPES,
    SAVER_METHODS,
    SAVER_SQL,
    STOCK_SAVER,
    TASKS,
    DeltaSnapshot,
    msgpack_ext_hook,
)


def test_the_saver_methods_we_call_are_still_there_with_their_parameters() -> None:
    for name, params in SAVER_METHODS.items():
        method = getattr(STOCK_SAVER, name, None)
        assert callable(method), f"AsyncPostgresSaver no longer has {name}"
        assert tuple(inspect.signature(method).parameters) == params, f"{name} changed its parameters"


def test_the_saver_sql_we_run_still_reads_and_writes_the_columns_we_expect() -> None:
    for name, words in SAVER_SQL.items():
        statement = getattr(STOCK_SAVER, name, None)
        assert isinstance(statement, str), f"AsyncPostgresSaver no longer has {name}"
        missing = [word for word in words if word not in statement]
        assert not missing, f"{name} no longer mentions {missing}"
    # A checkpoint's blobs come as (channel, type, blob) triples: the reader's rebuild needs them so.
    assert "array[bl.channel::bytea, bl.type::bytea, bl.blob]" in BasePostgresSaver.SELECT_SQL


def test_our_checkpoint_select_is_the_stock_one_but_for_how_it_finds_blobs() -> None:
    stock = BasePostgresSaver.SELECT_SQL
    ours = PooledPostgresSaver.SELECT_SQL
    assert ours == SELECT_CHECKPOINTS_SQL != stock
    assert ours.startswith(stock.partition("(\n        select array_agg")[0])
    assert ours.endswith(stock.partition(") as channel_values,")[2])
    assert "limit 1" in ours and "jsonb_each_text" in ours


def test_the_delta_snapshot_type_and_the_tasks_channel_are_where_we_import_them() -> None:
    assert DeltaSnapshot._fields == ("value",)
    assert TASKS == "__pregel_tasks"


def test_the_stock_saver_keeps_one_blob_row_per_channel_version() -> None:
    """A delta names its parent's version as its base: the stock layout must keep one blob row
    per (thread, namespace, channel, version), never rewritten."""
    migrations = "\n".join(BasePostgresSaver.MIGRATIONS)
    assert "PRIMARY KEY (thread_id, checkpoint_ns, channel, version)" in migrations
    assert "DO NOTHING" in BasePostgresSaver.UPSERT_CHECKPOINT_BLOBS_SQL


def test_the_serializer_still_decodes_messages_through_the_hook_we_take_over() -> None:
    """app/memory/message_decoding.py handles pydantic objects (extension code 5) of the classes
    the library always allows, and leaves the rest to the serializer's own hook."""
    serde = JsonPlusSerializer()
    hook = msgpack_ext_hook(serde)
    assert callable(hook), "JsonPlusSerializer no longer keeps its msgpack hook in _unpack_ext_hook"
    assert ("langchain_core.messages.ai", "AIMessage") in SAFE_MSGPACK_TYPES
    typed = serde.dumps_typed([HumanMessage("hi", id="h")])
    codes: list[int] = []

    def spy(code: int, data: bytes) -> object:
        codes.append(code)
        assert hook is not None
        return hook(code, data)

    assert ormsgpack.unpackb(typed[1], ext_hook=spy, option=ormsgpack.OPT_NON_STR_KEYS) == [
        HumanMessage("hi", id="h")
    ]
    assert codes == [EXT_PYDANTIC_V2]
    # A serializer that is not exactly the library's (one that encrypts, say): not taken over.
    assert msgpack_ext_hook(type("Wrapped", (JsonPlusSerializer,), {})()) is None
