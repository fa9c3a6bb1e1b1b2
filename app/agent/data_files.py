"""Users' own demo data from files: parquet (as the accelerator ships its tables) or CSV.

Each file is checked whole before anything is written: every column the table needs, of a type
that fits, with no value PostgreSQL could not store and no id twice. The first problem found is
reported with the file, the column and the row (1-based, data rows; for CSV also the line), so
it can be fixed in the file. Columns the table does not have are ignored.

Parquet needs pyarrow, in the `data` extra; CSV needs nothing.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.memory.demo_tables import THREAT_COLUMNS, THREAT_TABLE, USER_COLUMNS, USER_TABLE
from app.services.storable import unstorable_reason

PARQUET_HINT = "pip install 'lakebase-memory-agent[data]' (pyarrow)"
_INT32 = 2**31


class DataFileError(ValueError):
    """A file that cannot be loaded, with where and why."""


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "id" (bigint, not null, unique), "int" (integer), "timestamp" (not null), "text"


TABLE_COLUMNS: dict[str, tuple[Column, ...]] = {
    USER_TABLE: tuple(Column(name, "id" if name == "user_id" else "text") for name in USER_COLUMNS),
    THREAT_TABLE: tuple(
        Column(
            name,
            {
                "threat_id": "id",
                "event_timestamp": "timestamp",
                "source_port": "int",
                "destination_port": "int",
            }.get(name, "text"),
        )
        for name in THREAT_COLUMNS
    ),
}


def _as_int(value: Any, *, bits32: bool) -> int:
    if isinstance(value, bool):
        raise ValueError("is a boolean, not an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    number = int(value.strip()) if isinstance(value, str) else value
    if not isinstance(number, int):
        raise ValueError(f"is not an integer ({type(value).__name__})")
    if bits32 and not -_INT32 <= number < _INT32:
        raise ValueError("is out of range for an integer column")
    if not -(2**63) <= number < 2**63:
        raise ValueError("is out of range for a bigint column")
    return number


def _as_timestamp(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"is not an ISO 8601 timestamp ({value.strip()[:40]!r})") from None
    if not isinstance(value, datetime):
        raise ValueError(f"is not a timestamp ({type(value).__name__})")
    # The column has no time zone: an instant with one is stored as UTC.
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value


def _as_text(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    reason = unstorable_reason(text)
    if reason is not None:
        raise ValueError(reason)
    return text


def _convert(column: Column, value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):  # CSV has no NULL but ""
        if column.kind in ("id", "timestamp"):
            raise ValueError("is empty, and this column needs a value")
        return None
    if column.kind == "id":
        return _as_int(value, bits32=False)
    if column.kind == "int":
        return _as_int(value, bits32=True)
    if column.kind == "timestamp":
        return _as_timestamp(value)
    return _as_text(value)


def _check_columns(path: Path, table: str, present: Iterable[str]) -> None:
    missing = [c.name for c in TABLE_COLUMNS[table] if c.name not in set(present)]
    if missing:
        raise DataFileError(f"{path}: column {', '.join(missing)} is missing (the {table} table needs it)")


def _rows(
    path: Path, table: str, records: Iterable[tuple[int, str, dict[str, Any]]]
) -> list[tuple[Any, ...]]:
    """Converted rows from (row number, where, values) records, or the first problem found."""
    columns = TABLE_COLUMNS[table]
    seen_ids: dict[int, int] = {}
    rows: list[tuple[Any, ...]] = []
    for number, where, record in records:
        row: list[Any] = []
        for column in columns:
            try:
                row.append(_convert(column, record.get(column.name)))
            except ValueError as exc:
                raise DataFileError(f"{path}: column {column.name}, {where}: the value {exc}") from None
        key = row[0]
        if key in seen_ids:
            raise DataFileError(
                f"{path}: column {columns[0].name}, {where}: the id {key} is also in row {seen_ids[key]}"
            )
        seen_ids[key] = number
        rows.append(tuple(row))
    return rows


def _read_csv(path: Path, table: str) -> list[tuple[Any, ...]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        _check_columns(path, table, reader.fieldnames or [])
        records = (
            (number, f"row {number} (line {reader.line_num})", record)
            for number, record in enumerate(reader, start=1)
        )
        return _rows(path, table, records)


def _read_parquet(path: Path, table: str) -> list[tuple[Any, ...]]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DataFileError(f"{path}: reading parquet needs pyarrow: {PARQUET_HINT}") from None
    try:
        data = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataFileError(f"{path}: not a readable parquet file ({type(exc).__name__})") from None
    _check_columns(path, table, data.column_names)
    values: dict[str, list[Any]] = {}
    for column in TABLE_COLUMNS[table]:
        array = data.column(column.name)
        if column.kind == "timestamp" and pa.types.is_timestamp(array.type):
            # Nanoseconds have no Python datetime; PostgreSQL keeps microseconds anyway.
            array = array.cast(pa.timestamp("us", array.type.tz), safe=False)
        values[column.name] = array.to_pylist()
    records = (
        (number, f"row {number}", {name: column[number - 1] for name, column in values.items()})
        for number in range(1, data.num_rows + 1)
    )
    return _rows(path, table, records)


_READERS: dict[str, Callable[[Path, str], list[tuple[Any, ...]]]] = {
    ".csv": _read_csv,
    ".parquet": _read_parquet,
}


def read_table_file(path: Path, table: str) -> list[tuple[Any, ...]]:
    """The rows of `path` for `table`, in its column order. Raises `DataFileError`."""
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    suffixes: Sequence[str] = [s.lower() for s in path.suffixes]
    reader = next((_READERS[s] for s in reversed(suffixes) if s in _READERS), None)
    if reader is None:
        raise DataFileError(f"{path}: unknown format; use a .parquet or .csv file")
    try:
        return reader(path, table)
    except UnicodeDecodeError:
        raise DataFileError(f"{path}: not UTF-8 text") from None
    except csv.Error as exc:
        raise DataFileError(f"{path}: not valid CSV ({exc})") from None
