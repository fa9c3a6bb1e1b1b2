"""The demo's local SQL tools, over the shared pool.

They mirror the seed's Unity Catalog functions (one line of text each), minus the seed's bug:
`get_cyber_threat_info` really filters by the type asked for (case- and punctuation-insensitive)
and says so when nothing matches. Output is `key: value; key: value` so an LLM reads it easily
and the offline model can parse it exactly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from langchain_core.tools import BaseTool, StructuredTool
from psycopg.rows import dict_row

from app.memory.pool import Pool

THREAT_TOOL = "get_cyber_threat_info"
USER_TOOL = "get_user_info"


def format_fields(fields: Sequence[tuple[str, object]]) -> str:
    return "; ".join(f"{key}: {value}" for key, value in fields)


def parse_fields(text: str) -> dict[str, str]:
    """Inverse of `format_fields` (used by the offline model to read tool results)."""
    fields: dict[str, str] = {}
    for part in text.split("; "):
        key, sep, value = part.partition(": ")
        if sep and re.fullmatch(r"[a-z_]+", key):
            fields[key] = value
    return fields


def build_local_tools(pool: Pool) -> list[BaseTool]:
    async def get_cyber_threat_info(threat_type: str) -> str:
        """Return the latest cyber threat of the given type (e.g. Malware, Phishing, DDoS):
        its threat id, timestamp, source IP, protocol and detection tool."""
        wanted = threat_type.strip()
        async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT threat_id, event_timestamp, threat_type, source_ip, protocol, detection_tool"
                " FROM cyber_threat_detection"
                " WHERE regexp_replace(lower(threat_type), '[^a-z0-9]', '', 'g')"
                "     = regexp_replace(lower(%s), '[^a-z0-9]', '', 'g')"
                " ORDER BY event_timestamp DESC, threat_id DESC LIMIT 1",
                (wanted,),
            )
            row = await cur.fetchone()
            if row is None:
                await cur.execute(
                    "SELECT string_agg(DISTINCT threat_type, ', ' ORDER BY threat_type) AS types"
                    " FROM cyber_threat_detection"
                )
                known = await cur.fetchone()
                types = (known or {}).get("types") or "none"
                return f"No threat of type {wanted!r} was found. Known threat types: {types}."
        return format_fields(
            [
                ("threat_type", row["threat_type"]),
                ("threat_id", row["threat_id"]),
                ("event_timestamp", row["event_timestamp"].isoformat(sep=" ")),
                ("source_ip", row["source_ip"]),
                ("protocol", row["protocol"]),
                ("detection_tool", row["detection_tool"]),
            ]
        )

    async def get_user_info(source_ip: str) -> str:
        """Return the user at the given IP address: name, department, email, IP and location."""
        wanted = source_ip.strip()
        async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT user_name, department, email, ip_address, location FROM user_info"
                " WHERE ip_address = %s ORDER BY user_id LIMIT 1",
                (wanted,),
            )
            row = await cur.fetchone()
        if row is None:
            return f"No user has the IP address {wanted!r}."
        return format_fields(
            [(key, row[key]) for key in ("user_name", "department", "email", "ip_address", "location")]
        )

    return [
        StructuredTool.from_function(coroutine=get_cyber_threat_info, name=THREAT_TOOL),
        StructuredTool.from_function(coroutine=get_user_info, name=USER_TOOL),
    ]
