"""The MLflow model, as Model Serving would run it: logged from code by deploy/log_model.py into a
local file tracking store, loaded with `mlflow.pyfunc.load_model` in a fresh process, and asked
questions against the real PostgreSQL test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import latest_malware, unique

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
OWNER = "mlflow-test"

# Runs in the fresh process: loads the model once, then runs the operations read from stdin and
# prints their results as one JSON line. `pool` is the identity of the model's connection pool
# after each operation (the pool must be opened once per process and reused).
CLIENT = r"""
import json, sys
import mlflow

model = mlflow.pyfunc.load_model(sys.argv[1])
agent = model.get_raw_model()

def pool_id():
    return id(agent._runtime().resources().database.pool)

def error(exc):
    return {"error": type(exc).__name__, "code": getattr(exc, "code", None),
            "error_code": getattr(exc, "error_code", None), "message": str(exc)}

results = []
for op in json.load(sys.stdin):
    if op["op"] == "predict":
        try:
            result = {"response": model.predict(op["request"])}
        except Exception as exc:
            result = error(exc)
    elif op["op"] == "stream":
        result = {"events": list(model.predict_stream(op["request"]))}
    else:  # "busy": a second request on a thread while a streamed turn still runs there
        stream = model.predict_stream(op["request"])
        events = []
        for event in stream:
            events.append(event)
            if event["type"] == "response.output_text.delta":
                break
        try:
            model.predict(op["second"])
            result = {"second": "answered"}
        except Exception as exc:
            result = {"second": error(exc)}
        result["events"] = events + list(stream)
    result["pool"] = pool_id()
    results.append(result)
print("RESULTS " + json.dumps(results))
"""


def _env(tmp: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LAKEBASE_", "PG"))}
    env.update(
        DATABASE_URL=database_url,
        DB_POOL_MAX_SIZE="4",
        MLFLOW_TRACKING_URI=f"file://{tmp / 'mlruns'}",
        # MLflow 3.17 refuses the file store unless asked; it is the simplest store for a test.
        MLFLOW_ALLOW_FILE_STORE="true",
        SERVING_OWNER=OWNER,
        **extra,
    )
    return env


def _log_model(tmp: Path, database_url: str) -> str:
    """Run deploy/log_model.py as the job does; the logged model's URI."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "log_model.py"), "--experiment", "lakebase-memory-agent"],
        env=_env(tmp, database_url),
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    uri = done.stdout.strip().splitlines()[-1].removeprefix("model_uri: ")
    assert uri.startswith("models:/"), done.stdout
    return uri


@pytest.fixture(scope="module")
def logged_model(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    tmp = tmp_path_factory.mktemp("mlflow")
    return _log_model(tmp, database_url), tmp


def _run(logged: tuple[str, Path], database_url: str, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    uri, tmp = logged
    script = tmp / "client.py"
    script.write_text(CLIENT)
    done = subprocess.run(
        [sys.executable, str(script), uri],
        input=json.dumps(ops),
        env=_env(tmp, database_url, OFFLINE_TOKEN_DELAY_MS="40"),
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULTS "))
    results: list[dict[str, Any]] = json.loads(line.removeprefix("RESULTS "))
    return results


def _ask(content: str, **fields: Any) -> dict[str, Any]:
    return {"input": [{"role": "user", "content": content}], **fields}


def _answer(response: dict[str, Any]) -> str:
    messages = [item for item in response["output"] if item["type"] == "message"]
    return "".join(part["text"] for part in messages[-1]["content"])


def test_logged_model_remembers_the_thread_streams_and_returns_thread_ids(
    logged_model: tuple[str, Path], database_url: str
) -> None:
    thread, conversation = unique("mlflow"), unique("conv")
    results = _run(
        logged_model,
        database_url,
        [
            {
                "op": "predict",
                "request": _ask(
                    "Who committed the latest malware threat?", custom_inputs={"thread_id": thread}
                ),
            },
            # custom_inputs.thread_id wins over context.conversation_id.
            {
                "op": "predict",
                "request": _ask(
                    "What was their IP address?",
                    custom_inputs={"thread_id": thread},
                    context={"conversation_id": conversation},
                ),
            },
            {
                "op": "stream",
                "request": _ask(
                    "Who committed the latest phishing threat?", context={"conversation_id": conversation}
                ),
            },
            {"op": "predict", "request": _ask("What was their IP address?")},
        ],
    )
    ip, user = latest_malware(database_url)
    first, second, streamed, fresh = results

    response = first["response"]
    assert response["custom_outputs"]["thread_id"] == thread
    calls = [item for item in response["output"] if item["type"] == "function_call"]
    assert [c["name"] for c in calls] == ["get_cyber_threat_info", "get_user_info"]
    assert json.loads(calls[1]["arguments"]) == {"source_ip": ip}
    outputs = [item for item in response["output"] if item["type"] == "function_call_output"]
    assert [o["call_id"] for o in outputs] == [c["call_id"] for c in calls]
    assert user in _answer(response)

    # The second answer comes from the thread's memory of the first.
    assert second["response"]["custom_outputs"]["thread_id"] == thread
    assert _answer(second["response"]).startswith("Their IP address is")
    assert ip in _answer(second["response"])
    assert not [i for i in second["response"]["output"] if i["type"] == "function_call"]

    events = streamed["events"]
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert len(deltas) > 3
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [i["type"] for i in done] == [
        "function_call",
        "function_call_output",
        "function_call",
        "function_call_output",
        "message",
    ]
    answer = done[-1]
    assert "".join(d["delta"] for d in deltas) == answer["content"][0]["text"]
    assert {d["item_id"] for d in deltas} == {answer["id"]}
    assert "Phishing" in answer["content"][0]["text"]
    completed = events[-1]
    assert completed["type"] == "response.completed"
    assert completed["custom_outputs"]["thread_id"] == conversation

    # No thread named: a new one, returned; it knows nothing of the others.
    new_id = fresh["response"]["custom_outputs"]["thread_id"]
    assert uuid.UUID(new_id).version == 4
    assert "don't know" in _answer(fresh["response"])

    # One pool for the whole process.
    assert len({r["pool"] for r in results}) == 1
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT thread_id, owner FROM lma_threads WHERE thread_id = ANY(%s)",
            ([thread, conversation, new_id],),
        ).fetchall()
    assert sorted(rows) == sorted([(thread, OWNER), (conversation, OWNER), (new_id, OWNER)])


def test_logged_model_rejects_a_second_turn_on_a_busy_thread(
    logged_model: tuple[str, Path], database_url: str
) -> None:
    thread = unique("busy")
    first = _ask("Who committed the latest malware threat?", custom_inputs={"thread_id": thread})
    second = _ask("What was their IP address?", custom_inputs={"thread_id": thread})
    [busy, bad] = _run(
        logged_model,
        database_url,
        [
            {"op": "busy", "request": first, "second": second},
            {"op": "predict", "request": _ask("hi", custom_inputs={"thread_id": "no spaces allowed"})},
        ],
    )
    error = busy["second"]
    assert error["error"] == "ServingError"
    assert error["code"] == "thread_busy"
    assert error["error_code"] == "RESOURCE_CONFLICT"
    assert "running another turn" in error["message"]
    # The first turn is unaffected and completes.
    assert busy["events"][-1]["type"] == "response.completed"

    assert bad["code"] == "invalid_input"
    assert "custom_inputs.thread_id" in bad["message"]


def test_logging_again_runs_the_input_example_on_the_same_thread_not_a_new_one(
    logged_model: tuple[str, Path], database_url: str
) -> None:
    def example_thread() -> tuple[int, int]:
        with psycopg.connect(database_url) as conn:
            threads = conn.execute("SELECT count(*) FROM lma_threads WHERE owner = %s", (OWNER,)).fetchone()
            example = conn.execute(
                "SELECT turn_count FROM lma_threads WHERE owner = %s AND thread_id = %s",
                (OWNER, "log-model-input-example"),
            ).fetchone()
        assert threads is not None and example is not None, "the input example ran on its fixed thread"
        return int(threads[0]), int(example[0])

    threads_before, turns_before = example_thread()
    _log_model(logged_model[1], database_url)
    threads_after, turns_after = example_thread()
    assert threads_after == threads_before
    assert turns_after > turns_before
