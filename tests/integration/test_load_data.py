"""`lakebase-memory-agent load-data`: users' own demo tables from parquet or CSV, checked whole
before anything is written, `--replace` in one transaction; the agent then answers from them."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.lifespan import open_resources
from app.services.run_model import TurnRequest
from tests.conftest import make_settings, scratch_database, unique
from tests.faults.processes import ROOT, run_cli

pytestmark = pytest.mark.slow

# The accelerator's published tables, beside the repository (never committed to it).
SEED = ROOT.parent / "shared" / "seed"
USERS = [
    {"user_id": 1, "user_name": "Ann Lee", "department": "IT", "email": "ann@corp.example",
     "ip_address": "10.0.0.1", "location": "Oslo"},
    {"user_id": 2, "user_name": "Bo Chen", "department": "HR", "email": "bo@corp.example",
     "ip_address": "10.0.0.2", "location": "Lima"},
]  # fmt: skip
THREATS = [
    {"threat_id": 7, "event_timestamp": datetime(2025, 5, 1, 12, 0, 0, 123456), "source_ip": "10.0.0.2",
     "destination_ip": "10.9.9.9", "source_port": 5555, "destination_port": 443, "protocol": "TCP",
     "threat_type": "Malware", "detection_tool": "EDR", "description": "from a file"},
]  # fmt: skip


@pytest.fixture
def url(admin_url: str) -> Iterator[str]:
    with scratch_database(admin_url) as created:
        yield created


def _write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _write_parquet(path: Path, rows: list[dict[str, object]]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def _load(url: str, *args: str) -> tuple[int, str]:
    done = run_cli(["load-data", *args], DATABASE_URL=url, LOG_LEVEL="warning")
    return done.returncode, done.stdout + done.stderr


def test_spark_shaped_parquet_loads(url: str, tmp_path: Path) -> None:
    """The accelerator's schema as Spark writes it: nanosecond timestamps, int32 ports, ids not null."""
    schema = pa.schema(
        [
            pa.field("threat_id", pa.int64(), nullable=False),
            pa.field("event_timestamp", pa.timestamp("ns"), nullable=False),
            *[pa.field(n, pa.string()) for n in ("source_ip", "destination_ip")],
            *[pa.field(n, pa.int32()) for n in ("source_port", "destination_port")],
            *[pa.field(n, pa.string()) for n in ("protocol", "threat_type", "detection_tool", "description")],
        ]
    )
    rows = [{**THREATS[0], "threat_id": i} for i in range(1, 4)]  # the same instant three times
    path = tmp_path / "threats.snappy.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, compression="snappy")
    code, output = _load(url, "--threats", str(path))
    assert code == 0 and "cyber_threat_detection: 3 rows added" in output, output


@pytest.mark.skipif(not SEED.is_dir(), reason=f"the accelerator's tables are not at {SEED}")
def test_the_accelerators_own_parquet_files_load(url: str) -> None:
    code, output = _load(
        url,
        "--threats",
        str(SEED / "cyber_threat_detection.snappy.parquet"),
        "--users",
        str(SEED / "user_info.snappy.parquet"),
    )
    assert code == 0, output
    assert "cyber_threat_detection: 100 rows added" in output and "user_info: 20 rows added" in output
    assert _count(url, "cyber_threat_detection") == 100 and _count(url, "user_info") == 20


async def test_csv_and_parquet_load_and_the_agent_answers_from_them(url: str, tmp_path: Path) -> None:
    users = _write_csv(tmp_path / "users.csv", USERS)
    threats = _write_parquet(tmp_path / "threats.parquet", THREATS)
    code, output = _load(url, "--threats", str(threats), "--users", str(users), "--replace")
    assert code == 0, output
    with psycopg.connect(url) as conn:
        stamp = conn.execute("SELECT event_timestamp FROM cyber_threat_detection").fetchone()
    assert stamp == (THREATS[0]["event_timestamp"],)
    # The service's start leaves someone's own data alone (no sample rows mixed in).
    settings = make_settings(url)
    async with open_resources(settings) as resources:
        request = TurnRequest("tester", unique(), [("user", "Who committed the latest malware threat?")])
        result = await (await resources.runs.submit(request)).result()
    assert "Bo Chen" in result.messages[-1].content
    assert _count(url, "user_info") == 2 and _count(url, "cyber_threat_detection") == 1


def test_replace_swaps_the_contents_and_a_bad_file_loads_nothing(url: str, tmp_path: Path) -> None:
    first = _write_csv(tmp_path / "users.csv", USERS)
    assert _load(url, "--users", str(first))[0] == 0
    replacement = _write_csv(tmp_path / "new.csv", [{**USERS[0], "user_id": 9, "user_name": "Cy Dee"}])
    code, output = _load(url, "--users", str(replacement), "--replace")
    assert code == 0 and "user_info: 1 rows loaded" in output, output
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT user_id, user_name FROM user_info").fetchall() == [(9, "Cy Dee")]
    # Adding without --replace keeps what is there and says what it skipped.
    code, output = _load(url, "--users", str(first))
    assert code == 0 and "2 rows added" in output
    code, output = _load(url, "--users", str(first))
    assert code == 0 and "0 rows added, 2 skipped" in output
    # A file with one bad row changes nothing, even with --replace.
    broken = _write_csv(tmp_path / "broken.csv", [USERS[0], {**USERS[1], "user_id": "two"}])
    code, output = _load(url, "--users", str(broken), "--replace")
    assert code == 1
    assert f"{broken}: column user_id, row 2 (line 3)" in output and "nothing was loaded" in output
    assert _count(url, "user_info") == 3


@pytest.mark.parametrize(
    ("table_flag", "rows", "expected"),
    [
        ("--users", [{k: v for k, v in USERS[0].items() if k != "email"}], "column email is missing"),
        ("--users", [USERS[0], USERS[0]], "column user_id, row 2: the id 1 is also in row 1"),
        ("--threats", [{**THREATS[0], "event_timestamp": "yesterday"}], "column event_timestamp, row 1"),
        ("--threats", [{**THREATS[0], "source_port": 2**40}], "column source_port, row 1"),
        ("--threats", [{**THREATS[0], "event_timestamp": None}], "needs a value"),
        ("--users", [{**USERS[0], "user_name": "nul\x00here"}], "column user_name, row 1"),
    ],
    ids=["missing-column", "duplicate-id", "bad-timestamp", "int-range", "empty-required", "nul"],
)
def test_validation_names_the_file_column_and_row(
    url: str, tmp_path: Path, table_flag: str, rows: list[dict[str, object]], expected: str
) -> None:
    path = tmp_path / "data.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    code, output = _load(url, table_flag, str(path))
    assert code == 1 and str(path) in output and expected in output, output
    assert "Traceback" not in output


def test_unknown_formats_and_missing_files_are_clear(url: str, tmp_path: Path) -> None:
    text = tmp_path / "users.json"
    text.write_text("[]")
    assert "use a .parquet or .csv file" in _load(url, "--users", str(text))[1]
    assert "no such file" in _load(url, "--users", str(tmp_path / "absent.csv"))[1]
    assert _load(url)[0] == 2
