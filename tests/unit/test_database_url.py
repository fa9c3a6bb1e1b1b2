"""DATABASE_URL problems are described without quoting the URL; valid URLs of every shape pass."""

from __future__ import annotations

import pytest

from app.database_url import database_url_problem

SECRET = "pa55word"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:5432/db",
        f"postgresql://app:{SECRET}%25x@db.example:5432/db?sslmode=require",
        f"postgres://app:{SECRET}@[::1]:5432/db",
        "postgresql://app@h1:5432,h2:5433/db",
        "postgresql://app@[::1]:5432,[::2]/db",
        "postgresql:///db?host=/var/run/postgresql",
        f"host=127.0.0.1 port=5432 dbname=db user=app password='{SECRET} x'",
    ],
)
def test_valid_urls_pass(url: str) -> None:
    assert database_url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"postgresql://app:{SECRET}%@h/db", "percent-encode"),
        (f"postgresql://app:{SECRET}@[::1/db", "IPv6"),
        (f"postgresql://app:{SECRET}@h:54x2/db", "port"),
        (f"mysql://app:{SECRET}@h/db", "postgresql://"),
        (f"host=h password={SECRET} port", "cannot parse"),
    ],
)
def test_problems_are_named_and_the_secret_is_not(url: str, problem: str) -> None:
    found = database_url_problem(url)
    assert found is not None and problem in found and SECRET not in found
