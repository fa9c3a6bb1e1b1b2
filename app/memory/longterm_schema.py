"""The vector side of long-term memory: pgvector, `store_vectors` and its HNSW index.

Not in the migration list because its shape depends on the configured embedder (the vector
size) and because it needs pgvector, which a plain PostgreSQL may lack: with long-term memory
off the service must still start there. The table and index are LangGraph's own
(`AsyncPostgresStore`'s vector migrations, cosine HNSW), made here under the migration lock.
"""

from __future__ import annotations

from typing import Any

from psycopg import errors, sql

from app.memory.pool import Pool

_LOCK_KEY = "lakebase-memory-agent:migrations"


# Cosine HNSW, as LangGraph's vector migration makes it for distance_type="cosine".
VECTOR_INDEX = (
    "CREATE INDEX IF NOT EXISTS store_vectors_embedding_idx ON store_vectors"
    " USING hnsw (embedding vector_cosine_ops)"
)


class LongTermMemoryUnavailable(RuntimeError):
    """Long-term memory is on but the database cannot hold it; the message says what to do."""


async def _one(conn: Any, query: str, params: tuple[object, ...] = ()) -> Any:
    cur = await conn.execute(query, params)
    row = await cur.fetchone()
    return None if row is None else row[0]


async def existing_dims(pool: Pool) -> int | None:
    """The vector size of the existing `store_vectors` table (None: no table yet)."""
    async with pool.connection() as conn:
        # A pgvector column's typmod is its dimension count.
        found = await _one(
            conn,
            "SELECT a.atttypmod FROM pg_attribute a"
            " WHERE a.attrelid = to_regclass('store_vectors') AND a.attname = 'embedding'",
        )
    return None if found is None else int(found)


def _mismatch(found: int, dims: int) -> LongTermMemoryUnavailable:
    return LongTermMemoryUnavailable(
        f"the long-term memory index holds {found}-dimension embeddings but the configured embedder"
        f" makes {dims}-dimension ones. Either go back to the embedder that made them (EMBEDDING_PROVIDER,"
        f" EMBEDDING_DIMS={found}), or drop the old vectors with `DROP TABLE store_vectors` (the memories"
        " stay; save them again to make them searchable) and start again"
    )


_NO_PGVECTOR = (
    "LONG_TERM_MEMORY=true needs the pgvector extension, which this PostgreSQL server does not have."
    " Install pgvector on the server (Lakebase and the embedded PostgreSQL have it), or set"
    " EMBEDDING_PROVIDER=none (memories without semantic search), or LONG_TERM_MEMORY=false"
)


async def ensure_vector_index(pool: Pool, *, dims: int, create: bool) -> None:
    """Make sure pgvector, `store_vectors` (vector(dims)) and its HNSW index exist; with
    `create=False` (DB_MIGRATE=false) only check that an admin made them."""
    async with pool.connection() as conn:
        installed = await _one(conn, "SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        if installed is None:
            available = await _one(conn, "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
            if available is None:
                raise LongTermMemoryUnavailable(_NO_PGVECTOR)
            if not create:
                raise LongTermMemoryUnavailable(
                    "pgvector is available but not enabled and DB_MIGRATE=false: run"
                    " `lakebase-memory-agent init-db` with an admin role first"
                )
    found = await existing_dims(pool)
    if found is not None and found != dims:
        raise _mismatch(found, dims)
    if found is not None and not create:
        return
    if not create:
        raise LongTermMemoryUnavailable(
            "the long-term memory tables are missing and DB_MIGRATE=false: run"
            " `lakebase-memory-agent init-db` with an admin role first"
        )
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_LOCK_KEY,))
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except errors.InsufficientPrivilege as exc:
            raise LongTermMemoryUnavailable(
                "pgvector is not enabled and this role may not enable it: ask an admin to run"
                " `CREATE EXTENSION vector` in this database, or set LONG_TERM_MEMORY=false"
            ) from exc
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS store_vectors ("
                " prefix text NOT NULL, key text NOT NULL, field_name text NOT NULL,"
                " embedding vector({dims}),"
                " created_at timestamptz DEFAULT CURRENT_TIMESTAMP,"
                " updated_at timestamptz DEFAULT CURRENT_TIMESTAMP,"
                " PRIMARY KEY (prefix, key, field_name),"
                " FOREIGN KEY (prefix, key) REFERENCES store (prefix, key) ON DELETE CASCADE)"
            ).format(dims=sql.Literal(dims))
        )
        await conn.execute(VECTOR_INDEX)
    # Another process may have made the table first, with other dimensions.
    found = await existing_dims(pool)
    if found is not None and found != dims:
        raise _mismatch(found, dims)
