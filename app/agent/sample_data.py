"""The demo's synthetic cyber-security data: same shape as the seed's tables, generated, not copied.

Seeded, so every install has the same rows (tests and the README's session rely on that), and
loaded idempotently (`ON CONFLICT DO NOTHING` on the primary keys): loading twice, or from two
processes at once, leaves exactly one copy. Only empty tables get it: data of your own loaded
with `load-data` is never mixed with the sample.
"""

from __future__ import annotations

import random
from dataclasses import astuple, dataclass
from datetime import datetime, timedelta

from app.memory.demo_tables import THREAT_TABLE, USER_TABLE, load_rows
from app.memory.pool import Pool

THREAT_TYPES = (
    "Malware",
    "Ransomware",
    "Phishing",
    "DDoS",
    "BruteForce",
    "SQLInjection",
    "PortScan",
    "InsiderThreat",
)
DETECTION_TOOLS = ("Firewall", "IDS", "IPS", "SIEM", "EDR")
DEPARTMENTS = ("Finance", "Engineering", "Sales", "HR", "Marketing", "IT", "Legal", "Operations")
LOCATIONS = ("New York", "London", "Berlin", "Singapore", "San Francisco", "Toronto", "Sydney")
FIRST_NAMES = (
    "Alice", "Bob", "Carol", "David", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
    "Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Uma", "Victor", "Walter",
)  # fmt: skip
LAST_NAMES = ("Smith", "Jones", "Garcia", "Chen", "Novak", "Okafor", "Rossi", "Tanaka", "Dubois")
DESCRIPTIONS = {
    "Malware": "Malicious binary beaconing to a command-and-control host",
    "Ransomware": "Mass file encryption attempt on a network share",
    "Phishing": "Credential-harvesting link clicked from an email",
    "DDoS": "Traffic flood against a public endpoint",
    "BruteForce": "Repeated failed logins against an SSH service",
    "SQLInjection": "Injection payload in a web form parameter",
    "PortScan": "Sequential probing of closed ports",
    "InsiderThreat": "Bulk download of sensitive documents outside working hours",
}


@dataclass(frozen=True)
class UserRow:
    user_id: int
    user_name: str
    department: str
    email: str
    ip_address: str
    location: str


@dataclass(frozen=True)
class ThreatRow:
    threat_id: int
    event_timestamp: datetime
    source_ip: str
    destination_ip: str
    source_port: int
    destination_port: int
    protocol: str
    threat_type: str
    detection_tool: str
    description: str


def generate(*, seed: int = 7, users: int = 20, threats: int = 100) -> tuple[list[UserRow], list[ThreatRow]]:
    rng = random.Random(seed)
    names = rng.sample([f"{f} {last}" for f in FIRST_NAMES for last in LAST_NAMES], users)
    user_rows = []
    for i, name in enumerate(names, start=1):
        user_rows.append(
            UserRow(
                user_id=i,
                user_name=name,
                department=rng.choice(DEPARTMENTS),
                email=name.lower().replace(" ", ".") + "@example.com",
                ip_address=f"10.{rng.randint(0, 9)}.{rng.randint(0, 255)}.{i + 10}",
                location=rng.choice(LOCATIONS),
            )
        )
    start = datetime(2025, 1, 1)
    threat_rows = []
    for i in range(1, threats + 1):
        kind = (
            THREAT_TYPES[(i - 1) % len(THREAT_TYPES)] if i <= len(THREAT_TYPES) else rng.choice(THREAT_TYPES)
        )
        threat_rows.append(
            ThreatRow(
                threat_id=1000 + i,
                # Distinct timestamps, so "the latest" of a type is never a tie.
                event_timestamp=start + timedelta(hours=6 * i, minutes=rng.randint(0, 300)),
                source_ip=rng.choice(user_rows).ip_address,
                destination_ip=f"192.168.{rng.randint(0, 20)}.{rng.randint(1, 254)}",
                source_port=rng.randint(1024, 65535),
                destination_port=rng.choice((22, 25, 53, 80, 443, 445, 3306, 3389, 8080)),
                protocol=rng.choice(("TCP", "UDP")),
                threat_type=kind,
                detection_tool=rng.choice(DETECTION_TOOLS),
                description=DESCRIPTIONS[kind],
            )
        )
    return user_rows, threat_rows


async def load_sample_data(pool: Pool) -> int:
    """Insert the generated rows into empty demo tables; return how many were inserted. Tables
    that already have rows (the sample, or your own from `load-data`) are left as they are."""
    users, threats = generate()
    loaded = await load_rows(
        pool,
        {USER_TABLE: [astuple(u) for u in users], THREAT_TABLE: [astuple(t) for t in threats]},
        only_into_empty=True,
    )
    return sum(part.inserted for part in loaded)
