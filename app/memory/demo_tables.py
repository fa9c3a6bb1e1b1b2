"""Writes to the demo's tables (`user_info`, `cyber_threat_detection`): the generated sample data
and users' own files (`load-data`) go through here. The agent's tools read them (app/agent/tools.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, LiteralString

from app.memory.pool import Pool

USER_TABLE = "user_info"
THREAT_TABLE = "cyber_threat_detection"

USER_COLUMNS = ("user_id", "user_name", "department", "email", "ip_address", "location")
THREAT_COLUMNS = (
    "threat_id",
    "event_timestamp",
    "source_ip",
    "destination_ip",
    "source_port",
    "destination_port",
    "protocol",
    "threat_type",
    "detection_tool",
    "description",
)

_INSERT: dict[str, LiteralString] = {
    USER_TABLE: "INSERT INTO user_info (user_id, user_name, department, email, ip_address, location)"
    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (user_id) DO NOTHING",
    THREAT_TABLE: "INSERT INTO cyber_threat_detection (threat_id, event_timestamp, source_ip,"
    " destination_ip, source_port, destination_port, protocol, threat_type, detection_tool,"
    " description) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (threat_id) DO NOTHING",
}
_DELETE: dict[str, LiteralString] = {
    USER_TABLE: "DELETE FROM user_info",
    THREAT_TABLE: "DELETE FROM cyber_threat_detection",
}


@dataclass(frozen=True)
class Loaded:
    table: str
    inserted: int
    skipped: int  # rows whose id the table already had (kept as they were)


async def load_rows(
    pool: Pool,
    rows: Mapping[str, Sequence[Sequence[Any]]],
    *,
    replace: bool = False,
    only_into_empty: bool = False,
) -> list[Loaded]:
    """Insert `rows` (by table, in the column order above) in one transaction. `replace`: the
    tables given are emptied first, so readers see the old contents or the new, never a mix;
    `only_into_empty`: nothing is written if either demo table has rows (the sample data never
    mixes into someone's own). Rows whose id is already there are skipped."""
    loaded: list[Loaded] = []
    async with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        if only_into_empty:
            await cur.execute(
                "SELECT EXISTS (SELECT 1 FROM user_info) OR EXISTS (SELECT 1 FROM cyber_threat_detection)"
            )
            found = await cur.fetchone()
            if found is not None and found[0]:
                return [Loaded(table, 0, len(values)) for table, values in rows.items()]
        for table, values in rows.items():
            if replace:
                await cur.execute(_DELETE[table])
            await cur.executemany(_INSERT[table], values, returning=False)
            inserted = max(cur.rowcount, 0)
            loaded.append(Loaded(table, inserted, len(values) - inserted))
    return loaded
