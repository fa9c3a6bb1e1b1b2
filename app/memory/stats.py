"""Conversation analytics over the registry, runs, transcript, feedback and checkpoint tables.

The same questions as the documented DBSQL queries in deploy/queries/, in PostgreSQL, for
`GET /admin/stats` and `lakebase-memory-agent stats`. Storage is measured with
pg_column_size over whole rows (what the rows occupy, before TOAST compression is undone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from psycopg.rows import dict_row

from app.memory.feedback import feedback_totals
from app.memory.pool import Pool


@dataclass(frozen=True)
class Stats:
    totals: dict[str, int]
    top_threads: list[dict[str, Any]]
    per_day: list[dict[str, Any]]


_STORAGE_BY_KEY = (
    "SELECT thread_id AS key, sum(bytes) AS bytes FROM ("
    "  SELECT thread_id, pg_column_size(c.*) AS bytes FROM checkpoints c"
    "  UNION ALL SELECT thread_id, pg_column_size(b.*) FROM checkpoint_blobs b"
    "  UNION ALL SELECT thread_id, pg_column_size(w.*) FROM checkpoint_writes w"
    ") s GROUP BY thread_id"
)


async def collect_stats(pool: Pool, *, top: int = 10, days: int = 30) -> Stats:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT"
            " (SELECT count(*) FROM lma_threads) AS threads,"
            " (SELECT count(DISTINCT owner) FROM lma_threads) AS owners,"
            " (SELECT count(*) FROM lma_runs WHERE status = 'success') AS turns,"
            " (SELECT count(*) FROM lma_runs WHERE status IN ('error', 'timeout')) AS failed_turns,"
            " (SELECT count(*) FROM lma_messages) AS messages,"
            " (SELECT count(*) FROM lma_messages WHERE role = 'tool') AS tool_calls,"
            " (SELECT count(*) FROM checkpoints) AS checkpoints,"
            f" (SELECT coalesce(sum(bytes), 0) FROM ({_STORAGE_BY_KEY}) s) AS checkpoint_bytes,"
            " (SELECT coalesce(sum(pg_column_size(m.*)), 0) FROM lma_messages m) AS transcript_bytes"
        )
        totals = {k: int(v) for k, v in (await cur.fetchone() or {}).items()}
        totals |= await feedback_totals(conn)
        await cur.execute(
            "WITH storage AS (" + _STORAGE_BY_KEY + "),"
            " tools AS (SELECT thread_key, count(*) AS tool_calls FROM lma_messages"
            "   WHERE role = 'tool' GROUP BY thread_key)"
            " SELECT t.owner, t.thread_id, t.turn_count AS turns, t.message_count AS messages,"
            "   coalesce(tools.tool_calls, 0) AS tool_calls,"
            "   coalesce(storage.bytes, 0)::bigint AS checkpoint_bytes, t.last_activity_at"
            " FROM lma_threads t"
            " LEFT JOIN storage ON storage.key = t.thread_key::text"
            " LEFT JOIN tools ON tools.thread_key = t.thread_key"
            " ORDER BY checkpoint_bytes DESC, t.last_activity_at DESC LIMIT %s",
            (top,),
        )
        top_threads = await cur.fetchall()
        await cur.execute(
            "SELECT created_at::date AS day, count(*) FILTER (WHERE status = 'success') AS turns,"
            " count(*) FILTER (WHERE status IN ('error', 'timeout')) AS failed_turns,"
            " count(DISTINCT thread_key) AS active_threads"
            " FROM lma_runs WHERE created_at >= now() - make_interval(days => %s)"
            " GROUP BY 1 ORDER BY 1 DESC",
            (days,),
        )
        per_day = await cur.fetchall()
    for row in per_day:
        day = row["day"]
        row["day"] = day.isoformat() if isinstance(day, date) else str(day)
    return Stats(totals=totals, top_threads=list(top_threads), per_day=list(per_day))
