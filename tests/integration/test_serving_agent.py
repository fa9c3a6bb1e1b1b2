"""The MLflow ResponsesAgent in process (the logged-and-loaded model is tested in
test_mlflow_model.py): failures, the owner rule, and the process's one pool."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow.tracing
import psycopg
import pytest
from mlflow.types.responses import ResponsesAgentRequest, ResponsesAgentResponse

from app.serving.agent import MemoryResponsesAgent, ServingError
from app.settings import ServingSettings, Settings
from tests.conftest import make_settings, unique
from tests.fakes import ExplodingModel

pytestmark = pytest.mark.slow

Q1 = "Who committed the latest malware threat?"


@pytest.fixture(autouse=True)
def no_tracing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # ResponsesAgent traces every call; no traces here, and MLflow's files stay out of the repo.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file://{tmp_path / 'mlruns'}")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.tracing.disable()
    yield
    mlflow.tracing.enable()


def _ask(content: str, **fields: Any) -> ResponsesAgentRequest:
    # What MLflow's wrapper of `predict` makes of the request's JSON body.
    return ResponsesAgentRequest(input=[{"role": "user", "content": content}], **fields)


def _thread(response: ResponsesAgentResponse) -> str:
    assert response.custom_outputs is not None
    thread_id: str = response.custom_outputs["thread_id"]
    return thread_id


def _owner(database_url: str, thread_id: str) -> str | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT owner FROM lma_threads WHERE thread_id = %s", (thread_id,)).fetchone()
    return row[0] if row else None


def _settings(database_url: str, **serving: Any) -> Settings:
    return make_settings(database_url).model_copy(update={"serving": ServingSettings(**serving)})


def test_a_failing_turn_is_a_clear_error_without_library_text(database_url: str) -> None:
    agent = MemoryResponsesAgent(_settings(database_url), model=ExplodingModel(fail_on=1))
    try:
        with pytest.raises(ServingError) as raised:
            agent.predict(_ask(Q1))
        assert raised.value.code == "turn_failed"
        assert raised.value.error_code == "INTERNAL_ERROR"
        assert "hunter2" not in str(raised.value)
    finally:
        agent.close()


def test_a_turn_failing_mid_stream_ends_the_stream_with_an_error_event(database_url: str) -> None:
    # The first model call plans the tool call; the second one fails.
    agent = MemoryResponsesAgent(_settings(database_url), model=ExplodingModel(fail_on=2))
    try:
        events = [e.model_dump(exclude_none=True) for e in agent.predict_stream(_ask(Q1))]
    finally:
        agent.close()
    assert [e["type"] for e in events][:2] == ["response.output_item.done", "response.output_item.done"]
    assert events[0]["item"]["type"] == "function_call"
    assert events[-1]["type"] == "error" and events[-1]["code"] == "turn_failed"
    assert not [e for e in events if e["type"] == "response.completed"]
    assert "hunter2" not in repr(events)


def test_threads_belong_to_the_serving_owner_unless_the_request_user_is_trusted(database_url: str) -> None:
    owner = unique("svc")
    plain = MemoryResponsesAgent(_settings(database_url, owner=owner))
    trusting = MemoryResponsesAgent(_settings(database_url, owner=owner, trust_request_user=True))
    try:
        # An untrusted user id changes nothing.
        ignored = plain.predict(_ask("hi", context={"user_id": "mallory"}))
        assert _owner(database_url, _thread(ignored)) == owner
        named = trusting.predict(_ask("hi", context={"user_id": "alice@example.com"}))
        assert _owner(database_url, _thread(named)) == "alice@example.com"
        custom = trusting.predict(_ask("hi", custom_inputs={"user": "bob@example.com"}))
        assert _owner(database_url, _thread(custom)) == "bob@example.com"
        anonymous = trusting.predict(_ask("hi"))
        assert _owner(database_url, _thread(anonymous)) == owner
    finally:
        plain.close()
        trusting.close()


def test_one_pool_serves_every_request_and_close_closes_it(database_url: str) -> None:
    agent = MemoryResponsesAgent(_settings(database_url))
    thread = unique()
    agent.predict(_ask(Q1, custom_inputs={"thread_id": thread}))
    pool = agent._runtime().resources().database.pool
    list(agent.predict_stream(_ask("What was their IP address?", custom_inputs={"thread_id": thread})))
    assert agent._runtime().resources().database.pool is pool
    assert not pool.closed
    agent.close()
    assert pool.closed
