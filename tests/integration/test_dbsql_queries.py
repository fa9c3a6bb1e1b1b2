"""The documented DBSQL queries (deploy/queries) refer only to tables and columns that exist.

They cannot run here (Databricks SQL), so this guards them against schema drift: every
`${catalog}.${schema}.<table> AS <alias>` names a real table, and every `<alias>.<column>` a
real column of it, in a database the service has set up.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from tests.conftest import make_settings, running_app

QUERIES = sorted((Path(__file__).resolve().parents[2] / "deploy" / "queries").glob("*.sql"))
TABLE = re.compile(r"\$\{catalog\}\.\$\{schema\}\.(\w+)(?:\s+AS\s+(\w+))?", re.IGNORECASE)
COLUMN = re.compile(r"\b([a-z])\.(\w+)\b")


@pytest.mark.parametrize("path", QUERIES, ids=[p.name for p in QUERIES])
async def test_query_matches_the_schema(path: Path, database_url: str) -> None:
    async with running_app(make_settings(database_url)):
        pass  # tables exist
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
        ).fetchall()
    schema: dict[str, set[str]] = {}
    for table, column in rows:
        schema.setdefault(table, set()).add(column)

    text = path.read_text()
    aliases: dict[str, str] = {}
    tables = TABLE.findall(text)
    assert tables, "a query must read the service's tables"
    for table, alias in tables:
        assert table in schema, f"{path.name}: no table {table}"
        if alias:
            aliases[alias] = table
    for alias, column in COLUMN.findall(text):
        if alias in aliases:
            assert column in schema[aliases[alias]], f"{path.name}: {aliases[alias]} has no column {column}"
