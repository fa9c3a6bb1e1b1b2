"""Databricks Model Serving endpoints and Unity Catalog tools against a local server speaking
their wire protocol (tests/fakes.py `FakeChatServer`), with databricks-sdk's real unified auth
from the environment; and the start-up errors that name the setting to fix."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from databricks.sdk import WorkspaceClient
from langchain_core.messages import HumanMessage
from pydantic import ValidationError

from app.agent.model_errors import ModelConfigError
from app.agent.model_factory import build_model, prepare_model
from app.agent.tool_factory import check_tool_settings, uc_function_tools
from app.settings import ModelSettings, ToolSettings
from tests.conftest import free_port, make_settings, running_app, unique
from tests.fakes import FakeChatServer, Reply, RotatingDatabricksCredentials, Script
from tests.integration.test_llm_providers import FOLLOW_UP, QUESTION, answer_from_memory, routine
from tests.sse import parse_sse

TOKEN = "dapi-test-token"
ENDPOINT = "my-claude"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def databricks_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Only DATABRICKS_HOST + DATABRICKS_TOKEN (set by each test) reach the SDK's unified auth."""
    for name in list(os.environ):
        if name.startswith(("DATABRICKS_", "ARM_", "GOOGLE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-databrickscfg"))
    monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
    # databricks-langchain's tools trace with MLflow: keep its store out of the working tree.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    yield


def databricks_model(client: str, **overrides: Any) -> dict[str, Any]:
    return {"provider": "databricks", "serving_endpoint": ENDPOINT, "databricks_client": client, **overrides}


@pytest.mark.parametrize("client", ["openai", "databricks-langchain"])
async def test_serving_endpoint_dialogue_with_sdk_auth(
    client: str, database_url: str, databricks_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeChatServer(
        [*routine("Malware"), answer_from_memory], api_key=TOKEN, endpoints=[ENDPOINT]
    ) as server:
        monkeypatch.setenv("DATABRICKS_HOST", server.base_url)
        settings = make_settings(database_url, model=databricks_model(client, max_tokens=200))
        expected = "ChatOpenAI" if client == "openai" else "ChatDatabricks"
        assert type(await asyncio.to_thread(build_model, settings.model)).__name__ == expected
        async with running_app(settings) as (_, http):
            thread_id = unique()
            first = await http.post(f"/threads/{thread_id}/messages", json={"content": QUESTION})
            async with http.stream(
                "POST", f"/threads/{thread_id}/messages?stream=true", json={"content": FOLLOW_UP}
            ) as response:
                events = parse_sse("".join([chunk async for chunk in response.aiter_text()]))

    assert first.status_code == 200, first.text
    assert first.json()["messages"][-1]["content"].startswith("The latest Malware threat came from ")
    tokens = "".join(data["delta"] for name, _, data in events if name == "token")
    assert tokens.startswith("Their IP address was ") and events[-1][0] == "done"
    assert server.violations == []
    assert len(server.requests) == 4
    for request in server.requests:
        assert request.path == "/serving-endpoints/chat/completions"
        assert request.body["model"] == ENDPOINT
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.body["max_tokens"] == 200  # the name serving endpoints read
    assert server.requests[3].body["stream"] is True
    assert server.requests[3].roles[:2] == ["system", "user"] and len(server.requests[3].roles) == 8
    # The start-up check asked for the endpoint by name, with the same credentials.
    assert ("GET", f"/api/2.0/serving-endpoints/{ENDPOINT}") in [(m, p) for m, p, _ in server.other_requests]


async def test_openai_route_asks_for_fresh_auth_on_sync_and_async_clients() -> None:
    credentials = RotatingDatabricksCredentials()
    async with FakeChatServer([Reply(text="sync"), Reply(text="async")], endpoints=[ENDPOINT]) as server:
        workspace = await asyncio.to_thread(
            WorkspaceClient, host=server.base_url, credentials_strategy=credentials
        )
        model = build_model(ModelSettings(**databricks_model("openai")), workspace=workspace)
        sync_answer = await asyncio.to_thread(model.invoke, [HumanMessage("one")])
        async_answer = await model.ainvoke([HumanMessage("two")])
    assert (sync_answer.content, async_answer.content) == ("sync", "async")
    sent = [request.headers["authorization"] for request in server.requests]
    # Each request carried the token the SDK issued for it: none fixed at start-up, none missing.
    assert len(set(sent)) == 2
    assert all(header.removeprefix("Bearer ") in credentials.issued for header in sent)


async def test_unknown_serving_endpoint_fails_start_up_naming_the_setting(
    databricks_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeChatServer([], api_key=TOKEN, endpoints=["another-endpoint"]) as server:
        monkeypatch.setenv("DATABRICKS_HOST", server.base_url)
        with pytest.raises(ModelConfigError, match="DATABRICKS_SERVING_ENDPOINT") as failure:
            await prepare_model(ModelSettings(**databricks_model("openai")))
    assert ENDPOINT in str(failure.value) and TOKEN not in str(failure.value)


async def test_unreachable_base_url_fails_start_up_naming_the_setting() -> None:
    settings = ModelSettings(
        provider="openai", base_url=f"http://127.0.0.1:{free_port()}/v1", name="m", startup_check_timeout=2
    )
    with pytest.raises(ModelConfigError, match=r"OPENAI_BASE_URL=.* is unreachable"):
        await prepare_model(settings)


async def test_missing_extra_is_named_and_auto_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import databricks_langchain` fail, as when it is not installed.
    monkeypatch.setitem(sys.modules, "databricks_langchain", None)
    async with FakeChatServer() as server:  # answers the SDK's host probe; no model call is made
        workspace = await asyncio.to_thread(WorkspaceClient, host=server.base_url, token=TOKEN)
    with pytest.raises(
        ModelConfigError, match=r"databricks` extra: pip install 'lakebase-memory-agent\[databricks\]'"
    ):
        build_model(ModelSettings(**databricks_model("databricks-langchain")), workspace=workspace)
    fallback = build_model(ModelSettings(**databricks_model("auto")), workspace=workspace)
    assert type(fallback).__name__ == "ChatOpenAI"
    for settings, name in (
        (ToolSettings(uc_functions="main.cyber.get_user_info"), "UC_FUNCTIONS"),
        (ToolSettings(vector_search_index="main.cyber.docs_index"), "VECTOR_SEARCH_INDEX"),
    ):
        with pytest.raises(ModelConfigError, match=f"{name} needs the `databricks` extra"):
            check_tool_settings(settings)


def test_incomplete_model_settings_name_what_to_set() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"provider": "openai", "name": "m"}, "OPENAI_BASE_URL"),
        ({"provider": "openai", "base_url": "localhost:8000"}, "must start with http"),
        ({"provider": "openai", "base_url": "http://x/v1"}, "MODEL_NAME"),
        ({"provider": "databricks", "serving_endpoint": " "}, "DATABRICKS_SERVING_ENDPOINT"),
        ({"system_prompt": "a", "system_prompt_file": __file__}, "SYSTEM_PROMPT or SYSTEM_PROMPT_FILE"),
    ]
    for values, expected in cases:
        with pytest.raises(ValidationError, match=expected):
            ModelSettings(**values)
    with pytest.raises(ValidationError, match=r"catalog\.schema\.function"):
        ToolSettings(uc_functions="get_user_info")


def test_cli_prints_model_configuration_errors_without_traceback_or_secret() -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_", "OPENAI_"))}
    runs = [
        {"MODEL_PROVIDER": "openai", "OPENAI_API_KEY": "sk-secret-4711", "MODEL_NAME": "m"},
        {
            "MODEL_PROVIDER": "openai",
            "OPENAI_API_KEY": "sk-secret-4711",
            "MODEL_NAME": "m",
            "OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
            "MODEL_STARTUP_CHECK_TIMEOUT": "2",
        },
    ]
    outputs = []
    for extra in runs:
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", "serve"],
            env={**base, **extra},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and "sk-secret-4711" not in done.stderr
        outputs.append(done.stderr.strip())
    assert outputs[0].startswith("configuration error: MODEL_PROVIDER=openai needs OPENAI_BASE_URL")
    assert outputs[1].startswith("configuration error: OPENAI_BASE_URL='http://127.0.0.1:")
    assert "unreachable" in outputs[1]


PLAYBOOKS = {
    "name": "main.cyber.playbooks",
    "endpoint_name": "vs-endpoint",
    "primary_key": "id",
    "index_type": "DELTA_SYNC",
    "delta_sync_index_spec": {
        "source_table": "main.cyber.playbooks_src",
        "embedding_source_columns": [{"name": "text", "embedding_model_endpoint_name": "gte-embed"}],
    },
    "status": {"ready": True},
    "rows": [
        {"id": "7", "text": "Malware: isolate the host, then reset the user's credentials.", "score": 0.9}
    ],
}


async def test_vector_search_index_adds_a_retriever_tool_the_model_can_call(
    database_url: str, databricks_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    script: list[Script] = [
        Reply(tool_calls=[("playbooks", {"query": "how to respond to malware"})]),
        lambda r: Reply(text=f"Playbook says: {r.tool_results()[-1]}"),
    ]
    async with FakeChatServer(
        script, api_key=TOKEN, endpoints=["gte-embed"], indexes={"main.cyber.playbooks": PLAYBOOKS}
    ) as server:
        monkeypatch.setenv("DATABRICKS_HOST", server.base_url)
        model = {"provider": "openai", "base_url": f"{server.base_url}/v1", "api_key": TOKEN, "name": "m"}
        tools = {
            "vector_search_index": "main.cyber.playbooks",
            "vector_search_tool_name": "playbooks",
            "vector_search_description": "Incident response playbooks.",
        }
        async with running_app(make_settings(database_url, model=model, tools=tools)) as (_, http):
            response = await http.post(
                f"/threads/{unique()}/messages", json={"content": "Malware: what now?"}
            )
    assert response.status_code == 200, response.text
    assert server.violations == []
    # The local SQL tools stay; the retriever tool joins them, described as configured.
    tools_sent = {t["function"]["name"]: t["function"] for t in server.requests[0].body["tools"]}
    assert sorted(tools_sent) == ["get_cyber_threat_info", "get_user_info", "playbooks"]
    assert tools_sent["playbooks"]["description"] == "Incident response playbooks."
    tool_result = next(m for m in response.json()["messages"] if m["role"] == "tool")
    assert "isolate the host" in tool_result["content"]
    assert response.json()["messages"][-1]["content"].startswith("Playbook says: ")
    queried = [p for _, p, h in server.other_requests if p.endswith("/query") and TOKEN in h["authorization"]]
    assert queried == ["/api/2.0/vector-search/indexes/main.cyber.playbooks/query"]


def uc_function(name: str, param: str, comment: str) -> dict[str, Any]:
    """A Unity Catalog FunctionInfo as the REST API returns it (a scalar SQL function)."""
    type_json = json.dumps({"name": param, "type": "string", "nullable": True, "metadata": {}})
    parameter = {"name": param, "type_name": "STRING", "type_text": "string", "type_json": type_json}
    return {
        "name": name,
        "catalog_name": "main",
        "schema_name": "cyber",
        "full_name": f"main.cyber.{name}",
        "comment": comment,
        "data_type": "STRING",
        "full_data_type": "STRING",
        "routine_body": "SQL",
        "input_params": {"parameters": [{**parameter, "position": 0, "comment": f"the {param}"}]},
    }


async def test_unity_catalog_functions_become_tools_described_by_the_catalog() -> None:
    from databricks_langchain import DatabricksFunctionClient

    functions = {
        "main.cyber.get_cyber_threat_info": uc_function(
            "get_cyber_threat_info", "threat_type", "Latest threat."
        ),
        "main.cyber.get_user_info": uc_function("get_user_info", "source_ip", "The user at an IP."),
    }
    async with FakeChatServer(functions=functions, api_key=TOKEN) as server:

        def load(names: list[str]) -> list[Any]:
            workspace = WorkspaceClient(host=server.base_url, token=TOKEN)
            # "local": no databricks-connect session; building the tools is what is tested here.
            client = DatabricksFunctionClient(client=workspace, execution_mode="local")
            return uc_function_tools(names, function_client=client)

        tools = await asyncio.to_thread(load, list(functions))
        with pytest.raises(ModelConfigError, match=r"UC_FUNCTIONS: the functions main\.cyber\.nope"):
            await asyncio.to_thread(load, ["main.cyber.nope"])
    assert [(t.name, t.description, list(t.args)) for t in tools] == [
        ("main__cyber__get_cyber_threat_info", "Latest threat.", ["threat_type"]),
        ("main__cyber__get_user_info", "The user at an IP.", ["source_ip"]),
    ]
    paths = [
        path
        for _, path, headers in server.other_requests
        if headers.get("authorization") == f"Bearer {TOKEN}"
    ]
    assert "/api/2.1/unity-catalog/functions/main.cyber.get_user_info" in paths


def test_uc_function_sql_filters_by_the_parameter_not_the_column() -> None:
    sql = (ROOT / "deploy" / "uc_functions.sql").read_text()
    code = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    assert (
        "${catalog}.${schema}.get_cyber_threat_info(" in code
        and "${catalog}.${schema}.get_user_info(" in code
    )
    assert "threat_type = threat_type" not in code  # the seed's bug
    assert "regexp_replace(lower(get_cyber_threat_info.threat_type), '[^a-z0-9]', '')" in code
    assert "WHERE u.ip_address = trim(get_user_info.source_ip)" in code
    assert "No threat of type" in code and "No user has the IP address" in code
