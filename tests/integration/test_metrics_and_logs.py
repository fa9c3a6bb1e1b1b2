"""Prometheus metrics move as real traffic says they should; logs are one JSON line per request
and per turn, with the request id, and without message content."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.lifespan import open_resources
from app.observability.logging import JsonFormatter
from app.services.run_model import TurnRequest
from tests.conftest import free_port, make_settings, running_app, unique
from tests.fakes import ExplodingModel

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "Who committed the latest malware threat?"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_real_traffic(database_url: str) -> None:
    settings = make_settings(database_url, model={"offline_token_delay_ms": 30})
    async with running_app(settings) as (_, client):
        thread_id = unique()
        first = await client.post(
            f"/threads/{thread_id}/messages", json={"content": QUESTION}, headers={"Idempotency-Key": "k1"}
        )
        assert first.status_code == 200
        replay = await client.post(
            f"/threads/{thread_id}/messages", json={"content": QUESTION}, headers={"Idempotency-Key": "k1"}
        )
        assert replay.headers["idempotent-replayed"] == "true"
        slow = asyncio.create_task(
            client.post(f"/threads/{thread_id}/messages", json={"content": "What was their IP address?"})
        )
        for _ in range(200):
            if (await client.get(f"/threads/{thread_id}")).json()["status"] == "busy":
                break
            await asyncio.sleep(0.01)
        busy = await client.post(f"/threads/{thread_id}/messages", json={"content": "hi"})
        assert busy.status_code == 409
        assert (await slow).status_code == 200
        for _ in range(3):
            assert (await client.get("/healthz")).status_code == 200

        scrape = await client.get("/metrics")
        assert scrape.status_code == 200
        assert scrape.headers["content-type"].startswith("text/plain")
        found = samples(scrape.text)

    route = "/threads/{thread_id}/messages"
    assert value(found, "lma_http_requests_total", route=route, method="POST", status="200") == 3
    assert value(found, "lma_http_requests_total", route=route, method="POST", status="409") == 1
    assert value(found, "lma_http_request_duration_seconds_count", route=route, method="POST") == 4
    assert not any(labels and dict(labels).get("route") in ("/healthz", "/metrics") for _, labels in found)
    assert thread_id not in scrape.text  # no thread id ever becomes a label

    assert value(found, "lma_turns_started_total") == 2
    assert value(found, "lma_turns_completed_total") == 2
    assert value(found, "lma_turn_duration_seconds_count") == 2
    assert value(found, "lma_thread_busy_total") == 1
    assert value(found, "lma_idempotent_replays_total") == 1
    assert value(found, "lma_model_call_duration_seconds_count", provider="offline") == 4  # 3 + 1 calls
    assert value(found, "lma_model_tokens_total", provider="offline", direction="in") > 0
    assert value(found, "lma_model_tokens_total", provider="offline", direction="out") > 0
    assert value(found, "lma_tool_calls_total", tool="get_cyber_threat_info", outcome="success") == 1
    assert value(found, "lma_tool_calls_total", tool="get_user_info", outcome="success") == 1
    assert value(found, "lma_tool_call_duration_seconds_count", tool="get_user_info") == 1
    assert value(found, "lma_checkpoint_write_duration_seconds_count") == 2
    assert value(found, "lma_db_pool_connections") >= 1


async def test_failed_turns_are_counted_by_code_and_logged_with_a_stack(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from app.observability.metrics import Metrics

    metrics = Metrics()
    async with open_resources(
        make_settings(database_url), model=ExplodingModel(fail_on=1), metrics=metrics
    ) as res:
        handle = await res.runs.submit(TurnRequest("o", unique(), [("user", QUESTION)], stream=False))
        with caplog.at_level(logging.INFO), pytest.raises(Exception, match="failed to complete"):
            await handle.result()
    found = samples(metrics.render()[0].decode())
    assert value(found, "lma_turns_failed_total", code="turn_failed") == 1
    failure = next(r for r in caplog.records if r.getMessage() == "turn failed")
    assert failure.exc_info is not None
    formatted = json.loads(JsonFormatter().format(failure))
    assert "RuntimeError" in formatted["stack"] and formatted["error"] == "RuntimeError"
    turn_line = next(r for r in caplog.records if r.getMessage() == "turn")
    assert turn_line.status == "failed" and turn_line.error_code == "turn_failed"  # type: ignore[attr-defined]


async def test_content_is_logged_only_when_enabled(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    for enabled in (False, True):
        settings = make_settings(database_url, server={"log_content": enabled})
        caplog.clear()
        with caplog.at_level(logging.INFO):
            async with running_app(settings) as (_, client):
                assert (
                    await client.post(f"/threads/{unique()}/messages", json={"content": QUESTION})
                ).status_code == 200
        lines = [JsonFormatter().format(r) for r in caplog.records]
        assert any('"message": "turn"' in line for line in lines)
        assert any(QUESTION in line for line in lines) is enabled


def test_several_workers_share_metrics_and_log_json_lines(database_url: str, tmp_path: Path) -> None:
    """`serve --workers 2`: /metrics aggregates both processes; stderr is JSON lines."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "LOG_LEVEL": "info",
    }
    log_path = tmp_path / "stderr.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--workers", "2"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline and process.poll() is None, log_path.read_text()[-3000:]
                time.sleep(0.2)
            sent = 12
            request_ids = []
            with httpx.Client(base_url=base, timeout=30) as client:
                for i in range(sent):
                    # A new connection each time, so both workers get requests.
                    response = httpx.post(
                        f"{base}/threads/{unique()}/messages",
                        json={"content": QUESTION},
                        headers={"X-Request-ID": f"req-{i}"},
                        timeout=30,
                    )
                    assert response.status_code == 200
                    assert response.headers["x-request-id"] == f"req-{i}"
                    request_ids.append(f"req-{i}")
                found = samples(client.get("/metrics").text)
            route = "/threads/{thread_id}/messages"
            assert value(found, "lma_http_requests_total", route=route, method="POST", status="200") == sent
            assert value(found, "lma_turns_completed_total") == sent
        finally:
            process.terminate()
            process.wait(30)
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    access = [e for e in lines if e.get("message") == "request" and e.get("route") == route]
    assert sorted(e["request_id"] for e in access) == sorted(request_ids)
    assert {e["status"] for e in access} == {200} and all(e["owner"] == "local" for e in access)
    assert all(e["latency_ms"] > 0 and e["thread_id"] for e in access)
    turns = [e for e in lines if e.get("message") == "turn"]
    assert len(turns) == sent and all(e["run_id"] and e["request_id"] in request_ids for e in turns)
    assert QUESTION not in log_path.read_text()
