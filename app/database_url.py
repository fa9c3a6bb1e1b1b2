"""What can be wrong with a DATABASE_URL, said without quoting it.

libpq's own parse errors echo the part they choke on, which is often the password; settings
validation uses this instead, so a configuration error never puts the secret in a log.
"""

from __future__ import annotations

import re

import psycopg
from psycopg.conninfo import conninfo_to_dict

_PERCENT_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def database_url_problem(url: str) -> str | None:
    """What is wrong with a DATABASE_URL, in words that never quote it (libpq's own messages
    echo the part they choke on, which is often the password), or None."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme not in ("postgresql", "postgres"):
        return "it must start with postgresql:// (or postgres://)"
    if sep:
        if _PERCENT_ESCAPE.search(rest):
            return "it has a '%' that starts no %XX escape: percent-encode it as %25 (in the password too)"
        netloc = rest.split("/", 1)[0].rpartition("@")[2]
        if netloc.count("[") != netloc.count("]"):
            return "its IPv6 host is broken: write it in brackets, e.g. postgresql://user@[::1]:5432/db"
        for host in netloc.split(","):  # libpq takes several host[:port] for failover
            port = host.rpartition("]")[2].partition(":")[2]
            if port and not port.isdigit():
                return "its port is not a number"
    try:
        conninfo_to_dict(url)
    except psycopg.Error:
        return (
            "libpq cannot parse it (check the quoting of key=value pairs and the percent-encoding"
            " of the user and password)"
        )
    return None
