"""The project's own tables, as an append-only list of migrations, applied once per start.

Set-up is idempotent and safe when several processes start together: everything runs while one
session-level advisory lock is held, including the checkpointer's own `setup()`, whose migration
bookkeeping is not safe to run twice at once.
"""

from __future__ import annotations

import logging
from typing import LiteralString

import psycopg
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import sql

from app.memory.pool import Pool

logger = logging.getLogger(__name__)

_LOCK_KEY = "lakebase-memory-agent:migrations"

# Append only: never edit an entry once released; add a new one. One statement per string
# (prepared statements cannot hold several).
MIGRATIONS: list[list[LiteralString]] = [
    [
        """
        CREATE TABLE IF NOT EXISTS lma_threads (
        owner              text        NOT NULL,
        thread_id          text        NOT NULL,
        thread_key         uuid        NOT NULL UNIQUE,
        title              text,
        metadata           jsonb       NOT NULL DEFAULT '{}'::jsonb,
        created_at         timestamptz NOT NULL DEFAULT now(),
        updated_at         timestamptz NOT NULL DEFAULT now(),
        last_activity_at   timestamptz NOT NULL DEFAULT now(),
        message_count      integer     NOT NULL DEFAULT 0,
        turn_count         integer     NOT NULL DEFAULT 0,
        head_checkpoint_id text,
        lease_run_id       uuid,
        lease_expires_at   timestamptz,
        PRIMARY KEY (owner, thread_id)
    )
        """,
        """
        CREATE INDEX IF NOT EXISTS lma_threads_activity_idx
        ON lma_threads (owner, last_activity_at DESC, thread_id DESC)
        """,
        """
        CREATE TABLE IF NOT EXISTS lma_runs (
        run_id               uuid        PRIMARY KEY,
        thread_key           uuid        NOT NULL REFERENCES lma_threads (thread_key) ON DELETE CASCADE,
        idempotency_key      text,
        request_hash         text,
        status               text        NOT NULL,
        parent_checkpoint_id text,
        checkpoint_id        text,
        message_count        integer,
        response             jsonb,
        error_code           text,
        started_at           timestamptz NOT NULL DEFAULT now(),
        finished_at          timestamptz,
        UNIQUE (thread_key, idempotency_key)
    )
        """,
        """
        CREATE INDEX IF NOT EXISTS lma_runs_checkpoint_idx ON lma_runs (thread_key, checkpoint_id)
        """,
        """
        CREATE TABLE IF NOT EXISTS lma_messages (
        thread_key   uuid        NOT NULL REFERENCES lma_threads (thread_key) ON DELETE CASCADE,
        seq          integer     NOT NULL,
        message_id   text        NOT NULL,
        run_id       uuid,
        role         text        NOT NULL,
        content      text        NOT NULL,
        name         text,
        tool_calls   jsonb,
        tool_call_id text,
        created_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (thread_key, seq)
    )
        """,
        """
        CREATE TABLE IF NOT EXISTS cyber_threat_detection (
        threat_id        bigint    PRIMARY KEY,
        event_timestamp  timestamp NOT NULL,
        source_ip        text,
        destination_ip   text,
        source_port      integer,
        destination_port integer,
        protocol         text,
        threat_type      text,
        detection_tool   text,
        description      text
    )
        """,
        """
        CREATE INDEX IF NOT EXISTS cyber_threat_type_ts_idx
        ON cyber_threat_detection
            (regexp_replace(lower(threat_type), '[^a-z0-9]', '', 'g'), event_timestamp DESC)
        """,
        """
        CREATE TABLE IF NOT EXISTS user_info (
        user_id    bigint PRIMARY KEY,
        user_name  text,
        department text,
        email      text,
        ip_address text,
        location   text
    )
        """,
        """
        CREATE INDEX IF NOT EXISTS user_info_ip_idx ON user_info (ip_address)
        """,
    ],
    # 1: retention (per-thread TTL) and compaction bookkeeping.
    [
        "ALTER TABLE lma_threads ADD COLUMN IF NOT EXISTS ttl_seconds integer",
        "ALTER TABLE lma_threads ADD COLUMN IF NOT EXISTS compacted_at timestamptz",
        "CREATE INDEX IF NOT EXISTS lma_threads_last_activity_idx ON lma_threads (last_activity_at)",
        "CREATE INDEX IF NOT EXISTS lma_runs_started_idx ON lma_runs (started_at)",
    ],
    # 2: branches. The transcript keeps every branch a fork creates (copy-on-fork of the shared
    # prefix), so the full conversation at any checkpoint is a range of one branch's rows.
    [
        "ALTER TABLE lma_threads ADD COLUMN IF NOT EXISTS branch integer NOT NULL DEFAULT 0",
        "ALTER TABLE lma_threads ADD COLUMN IF NOT EXISTS branch_count integer NOT NULL DEFAULT 1",
        "ALTER TABLE lma_runs ADD COLUMN IF NOT EXISTS branch integer NOT NULL DEFAULT 0",
        "ALTER TABLE lma_messages ADD COLUMN IF NOT EXISTS branch integer NOT NULL DEFAULT 0",
        "ALTER TABLE lma_messages DROP CONSTRAINT IF EXISTS lma_messages_pkey",
        "ALTER TABLE lma_messages ADD PRIMARY KEY (thread_key, branch, seq)",
    ],
    # 3: durable runs. A run is a resource (the Agent Protocol's Run): created pending or
    # running, executed by whichever process claims it, with an append-only event log that
    # joiners on any replica read by (run_id, seq). Statuses take the protocol's vocabulary.
    [
        "ALTER TABLE lma_runs ADD COLUMN IF NOT EXISTS assistant_id text",
        "ALTER TABLE lma_runs ADD COLUMN IF NOT EXISTS metadata jsonb NOT NULL DEFAULT '{}'::jsonb",
        "ALTER TABLE lma_runs ADD COLUMN IF NOT EXISTS multitask_strategy text NOT NULL DEFAULT 'reject'",
        "ALTER TABLE lma_runs ADD COLUMN IF NOT EXISTS input jsonb",
        "ALTER TABLE lma_runs ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now()",
        "ALTER TABLE lma_runs ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now()",
        "ALTER TABLE lma_runs ADD COLUMN IF NOT EXISTS heartbeat_at timestamptz",
        "ALTER TABLE lma_runs ADD COLUMN IF NOT EXISTS start_seq integer",
        "ALTER TABLE lma_runs ADD COLUMN IF NOT EXISTS error_message text",
        # A scheduled run (the protocol's after_seconds) starts no earlier than this.
        "ALTER TABLE lma_runs ADD COLUMN IF NOT EXISTS not_before timestamptz",
        "ALTER TABLE lma_runs ALTER COLUMN started_at DROP NOT NULL",
        "ALTER TABLE lma_runs ALTER COLUMN started_at DROP DEFAULT",
        "UPDATE lma_runs SET created_at = coalesce(started_at, created_at),"
        " updated_at = coalesce(finished_at, started_at, updated_at),"
        " status = CASE status WHEN 'completed' THEN 'success' WHEN 'failed' THEN 'error' ELSE status END",
        # A replay reads a run's result from the transcript (its rows start_seq..message_count).
        "UPDATE lma_runs r SET start_seq = (SELECT min(m.seq) FROM lma_messages m"
        " WHERE m.thread_key = r.thread_key AND m.branch = r.branch AND m.run_id = r.run_id)"
        " WHERE r.status = 'success'",
        "ALTER TABLE lma_runs DROP COLUMN IF EXISTS response",
        # The graph a thread's turns run on (NULL: not yet bound; its first run binds it).
        "ALTER TABLE lma_threads ADD COLUMN IF NOT EXISTS graph_id text",
        "CREATE INDEX IF NOT EXISTS lma_runs_thread_created_idx ON lma_runs (thread_key, created_at DESC)",
        "CREATE INDEX IF NOT EXISTS lma_runs_pending_idx ON lma_runs (thread_key, created_at)"
        " WHERE status = 'pending'",
        "CREATE INDEX IF NOT EXISTS lma_runs_unfinished_idx ON lma_runs (heartbeat_at)"
        " WHERE finished_at IS NULL AND status <> 'pending'",
        "CREATE INDEX IF NOT EXISTS lma_runs_finished_idx ON lma_runs (finished_at)",
        """
        CREATE TABLE IF NOT EXISTS lma_run_events (
        run_id     uuid        NOT NULL REFERENCES lma_runs (run_id) ON DELETE CASCADE,
        seq        integer     NOT NULL,
        last_seq   integer     NOT NULL,
        terminal   boolean     NOT NULL DEFAULT false,
        events     jsonb       NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (run_id, seq)
    )
        """,
    ],
    # 4: feedback on a turn (app/memory/feedback.py).
    [
        """
        CREATE TABLE IF NOT EXISTS lma_feedback (
        thread_key uuid        NOT NULL REFERENCES lma_threads (thread_key) ON DELETE CASCADE,
        run_id     uuid        NOT NULL,
        rating     smallint    NOT NULL CHECK (rating IN (-1, 1)),
        comment    text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (thread_key, run_id)
    )
        """,
    ],
    # 5: emails are case-insensitive owners (app.settings.canonical_owner). A thread whose id
    # the lower-case owner already uses (or another spelling would) keeps its rows under the id
    # with a suffix from its old spelling, so nothing is lost and no two threads merge.
    [
        """
        UPDATE lma_threads t
        SET owner = lower(t.owner),
            thread_id = CASE
                WHEN EXISTS (
                    SELECT 1 FROM lma_threads o
                    WHERE lower(o.owner) = lower(t.owner) AND o.thread_id = t.thread_id
                      AND o.owner <> t.owner
                ) THEN left(t.thread_id, 119) || ':' || left(md5(t.owner), 8)
                ELSE t.thread_id
            END
        WHERE t.owner LIKE '%@%' AND t.owner <> lower(t.owner)
        """,
    ],
    # 6: long-term memory (app/memory/longterm.py): LangGraph's `store` table as its own
    # migrations leave it, so `AsyncPostgresStore` reads and writes it unchanged. The vectors
    # (pgvector, sized by the embedder) are made at start by app/memory/longterm_schema.py, so a
    # server without pgvector still starts with long-term memory off.
    [
        """
        CREATE TABLE IF NOT EXISTS store (
        prefix      text        NOT NULL,
        key         text        NOT NULL,
        value       jsonb       NOT NULL,
        created_at  timestamptz DEFAULT CURRENT_TIMESTAMP,
        updated_at  timestamptz DEFAULT CURRENT_TIMESTAMP,
        expires_at  timestamptz,
        ttl_minutes integer,
        PRIMARY KEY (prefix, key)
    )
        """,
        "ALTER TABLE store ADD COLUMN IF NOT EXISTS expires_at timestamptz",
        "ALTER TABLE store ADD COLUMN IF NOT EXISTS ttl_minutes integer",
        "CREATE INDEX IF NOT EXISTS store_prefix_idx ON store USING btree (prefix text_pattern_ops)",
        "CREATE INDEX IF NOT EXISTS idx_store_expires_at ON store (expires_at) WHERE expires_at IS NOT NULL",
    ],
    # 7: human in the loop. A turn that paused on an interrupt (a tool call awaiting approval, a
    # graph's own `interrupt()`) leaves its thread waiting: the pending interrupts (id, value)
    # and since when, written by the commit that saved the paused turn and cleared by the next.
    # On the thread row so listing threads and refusing a message cost no checkpoint read; on
    # the run's too, so a retried request (its idempotency key) answers as the run did.
    [
        "ALTER TABLE lma_threads ADD COLUMN IF NOT EXISTS interrupts jsonb",
        "ALTER TABLE lma_threads ADD COLUMN IF NOT EXISTS interrupted_at timestamptz",
        "ALTER TABLE lma_runs ADD COLUMN IF NOT EXISTS interrupts jsonb",
    ],
    # 8: a run's events are announced (NOTIFY) only once someone follows it from its log: a
    # notification serialises the commits that send one (app/memory/run_events.py).
    [
        "ALTER TABLE lma_runs ADD COLUMN IF NOT EXISTS watched boolean NOT NULL DEFAULT false",
    ],
]


class SchemaNotReady(RuntimeError):
    """The tables are missing or older than this release (with DB_MIGRATE=false)."""


async def check_schema(pool: Pool) -> None:
    """Without the right to create tables, make sure an admin already created them."""
    async with pool.connection() as conn:
        try:
            cur = await conn.execute("SELECT coalesce(max(v), -1) FROM lma_migrations")
            row = await cur.fetchone()
        except psycopg.errors.UndefinedTable:
            row = None
    if row is None or int(row[0]) < len(MIGRATIONS) - 1:  # type: ignore[call-overload]
        raise SchemaNotReady(
            "the tables are missing or out of date and DB_MIGRATE=false: run"
            " `lakebase-memory-agent init-db` with an admin role first (see deploy/grants.sql)"
        )


async def migrate(pool: Pool, saver: AsyncPostgresSaver, *, schema: str | None = None) -> None:
    """Bring the checkpoint tables and ours to the latest version (in `schema` when given; the
    pool's connections already have it as their search_path)."""
    async with pool.connection() as conn:
        await conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (_LOCK_KEY,))
        try:
            if schema:
                await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            await saver.setup()
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS lma_migrations ("
                " v integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur = await conn.execute("SELECT coalesce(max(v), -1) FROM lma_migrations")
            row = await cur.fetchone()
            current = int(row[0]) if row else -1  # type: ignore[call-overload]
            for version in range(current + 1, len(MIGRATIONS)):
                async with conn.transaction():
                    for statement in MIGRATIONS[version]:
                        await conn.execute(statement)
                    await conn.execute("INSERT INTO lma_migrations (v) VALUES (%s)", (version,))
                logger.info("applied migration %d", version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (_LOCK_KEY,))
