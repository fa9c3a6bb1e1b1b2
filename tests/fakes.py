"""Test doubles, in one place. Production code never bends to fit them."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import psycopg
import uvicorn
from databricks.sdk.credentials_provider import CredentialsStrategy
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.messages import BaseMessage, ToolCall
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.tools import BaseTool, StructuredTool
from psycopg import sql
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.agent.offline_model import Decision, OfflineChatModel
from app.agent.tools import USER_TOOL


class ExplodingModel(OfflineChatModel):
    """Plans like the offline model, but fails on its `fail_on`-th call (1-based)."""

    fail_on: int = 1
    calls: int = 0

    def _count_call(self) -> None:
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("model endpoint exploded: secret=hunter2")

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self._count_call()
        return super()._generate(messages, stop, run_manager, **kwargs)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        self._count_call()
        async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
            yield chunk


class LoopingModel(OfflineChatModel):
    """A model that never answers: every call asks for `get_user_info` again, with the same
    arguments (`vary=False`) or new ones each time (`vary=True`)."""

    vary: bool = False
    calls: int = 0

    def _decide(self, messages: Sequence[BaseMessage], kwargs: dict[str, Any]) -> Decision:
        self.calls += 1
        ip = f"203.0.113.{self.calls}" if self.vary else "203.0.113.1"
        return Decision(tool_call=ToolCall(name=USER_TOOL, args={"source_ip": ip}, id=f"loop_{self.calls}"))


def unreachable_user_tool(port: int) -> BaseTool:
    """`get_user_info` whose database is down: it connects to a port nothing listens on."""

    async def get_user_info(source_ip: str) -> str:
        """Return the user at the given IP address."""
        async with await psycopg.AsyncConnection.connect(
            f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=2
        ):
            return "unreachable"

    return StructuredTool.from_function(coroutine=get_user_info, name="get_user_info")


def broken_threat_tool() -> BaseTool:
    async def get_cyber_threat_info(threat_type: str) -> str:
        """Always fails, like a database or UC function that is down."""
        raise ConnectionError("threat table unreachable")

    return StructuredTool.from_function(coroutine=get_cyber_threat_info, name="get_cyber_threat_info")


def hanging_threat_tool() -> BaseTool:
    async def get_cyber_threat_info(threat_type: str) -> str:
        """Never returns, like a query stuck behind a lock."""
        await asyncio.Event().wait()
        return "unreachable"

    return StructuredTool.from_function(coroutine=get_cyber_threat_info, name="get_cyber_threat_info")


class FakeWorkspaceClient:
    """Duck-typed `databricks.sdk.WorkspaceClient` for Lakebase over a real PostgreSQL cluster.

    Each `generate_database_credential` issues a new random password and `ALTER ROLE`s the
    database role to it, so the old password stops working at once (stricter than Lakebase,
    where an old token still logs in until it expires). Tokens say they expire after
    `token_lifetime` seconds. Set `failing` to make minting raise.
    """

    def __init__(self, *, admin_url: str, role: str, host: str, token_lifetime: float = 3600.0) -> None:
        self.admin_url = admin_url
        self.role = role
        self.host = host
        self.token_lifetime = token_lifetime
        self.failing = False
        self.tokens: list[str] = []
        self.rotated_at: list[datetime] = []
        outer = self

        class _Database:
            def generate_database_credential(
                self, *, request_id: str | None = None, instance_names: list[str] | None = None
            ) -> SimpleNamespace:
                return outer._mint(instance_names or [])

            def get_database_instance(self, name: str) -> SimpleNamespace:
                return SimpleNamespace(name=name, read_write_dns=outer.host)

        class _CurrentUser:
            def me(self) -> SimpleNamespace:
                return SimpleNamespace(user_name=outer.role)

        class _Postgres:  # autoscaling projects
            def _endpoint(self, name: str) -> SimpleNamespace:
                status = SimpleNamespace(
                    endpoint_type="ENDPOINT_TYPE_READ_WRITE", hosts=SimpleNamespace(host=outer.host)
                )
                return SimpleNamespace(name=name, status=status)

            def list_endpoints(self, parent: str) -> list[SimpleNamespace]:
                outer.calls.append(("list_endpoints", parent))
                read_only = SimpleNamespace(
                    name=f"{parent}/endpoints/ro",
                    status=SimpleNamespace(endpoint_type="ENDPOINT_TYPE_READ_ONLY"),
                )
                return [read_only, self._endpoint(f"{parent}/endpoints/rw")]

            def get_endpoint(self, name: str) -> SimpleNamespace:
                return self._endpoint(name)

            def generate_database_credential(self, endpoint: str) -> SimpleNamespace:
                outer.calls.append(("endpoint_credential", endpoint))
                minted = outer._mint([endpoint])
                return SimpleNamespace(token=minted.token, expire_time=minted.expiration_time)

        class _Config:  # the caller's own OAuth token (a Databricks App's service principal)
            def oauth_token(self) -> SimpleNamespace:
                outer.calls.append(("oauth_token", ""))
                minted = outer._mint(["workspace-oauth"])
                return SimpleNamespace(access_token=minted.token, expiry=None)

        self.calls: list[tuple[str, str]] = []
        self.database = _Database()
        self.current_user = _CurrentUser()
        self.postgres = _Postgres()
        self.config = _Config()

    def _mint(self, instance_names: list[str]) -> SimpleNamespace:
        if self.failing:
            raise ConnectionError("workspace unreachable")
        assert instance_names, "instance_names is required"
        token = f"tok-{secrets.token_urlsafe(24)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(self.role), sql.Literal(token))
            )
        self.tokens.append(token)
        self.rotated_at.append(datetime.now(UTC))
        expires = datetime.now(UTC) + timedelta(seconds=self.token_lifetime)
        return SimpleNamespace(token=token, expiration_time=expires.isoformat())


# -- model endpoints -----------------------------------------------------------------------------


@dataclass
class Reply:
    """One scripted answer of `FakeChatServer`: text and/or tool calls, or an HTTP error.
    `hold`: answer only once the server's `release` event is set (a model that hangs)."""

    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    error: str = ""
    hold: bool = False


@dataclass
class ChatRequest:
    """A chat-completions request as the fake server received it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def roles(self) -> list[str]:
        return [m["role"] for m in self.messages]

    @property
    def tool_names(self) -> list[str]:
        return [t["function"]["name"] for t in self.body.get("tools", [])]

    def tool_results(self) -> list[str]:
        return [str(m.get("content")) for m in self.messages if m["role"] == "tool"]


Script = Reply | Callable[[ChatRequest], Reply]


def chat_request_problems(body: dict[str, Any]) -> list[str]:
    """What makes a chat-completions request invalid, as strict providers check it: every
    assistant tool call answered by tool messages right after it, no tool message without its
    call, well-formed tool schemas."""
    problems: list[str] = []
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return ["messages is missing or empty"]
    if not isinstance(body.get("model"), str) or not body["model"]:
        problems.append("model is missing")
    pending: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in {"system", "user", "assistant", "tool"}:
            problems.append(f"message {i} has role {role!r}")
        if role == "tool":
            if message.get("tool_call_id") not in pending:
                problems.append(f"message {i} answers a tool call that is not pending")
            pending.discard(message.get("tool_call_id"))
            continue
        if pending:
            problems.append(f"message {i} ({role}) comes before tool calls {sorted(pending)} were answered")
            pending.clear()
        if role == "assistant":
            pending = {call["id"] for call in message.get("tool_calls") or []}
    if pending:
        problems.append(f"tool calls {sorted(pending)} are not answered")
    for tool in body.get("tools") or []:
        function = tool.get("function") or {}
        if tool.get("type") != "function" or not function.get("name") or "parameters" not in function:
            problems.append(f"malformed tool {tool!r}")
    return problems


async def serve_on_loopback(app: Starlette) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    """Serve `app` on a free port of 127.0.0.1; returns the server, its task and its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=1)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, f"http://127.0.0.1:{port}"


class FakeChatServer:
    """An OpenAI-compatible chat-completions server on 127.0.0.1, also answering Databricks'
    serving-endpoint paths (`/serving-endpoints/chat/completions`, `.../<name>/invocations`,
    `/api/2.0/serving-endpoints/<name>`), Unity Catalog function and Vector Search index
    descriptions; other paths are recorded and answered 404.

    It records every request (`requests`), checks each against the protocol (`violations`,
    answered 400), and answers from `script` in order (streaming SSE chunks with `delta.content`
    and `delta.tool_calls` when asked to stream, one JSON completion otherwise). `api_key`: the
    only `Authorization: Bearer` value it accepts (401 otherwise)."""

    def __init__(
        self,
        script: Sequence[Script] = (),
        *,
        api_key: str | None = None,
        endpoints: Sequence[str] = ("databricks-claude-3-7-sonnet",),
        functions: dict[str, dict[str, Any]] | None = None,
        indexes: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.script: list[Script] = list(script)
        self.api_key = api_key
        self.endpoints = set(endpoints)
        self.functions = functions or {}
        self.indexes = indexes or {}
        self.requests: list[ChatRequest] = []
        self.other_requests: list[tuple[str, str, dict[str, str]]] = []  # method, path, headers
        self.violations: list[str] = []
        self.release = asyncio.Event()
        self._calls = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.base_url = ""

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> FakeChatServer:
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/serving-endpoints/chat/completions", self._chat, methods=["POST"]),
                Route("/serving-endpoints/{name}/invocations", self._chat, methods=["POST"]),
                Route("/v1/models", self._models),
                Route("/api/2.0/serving-endpoints/{name}", self._endpoint),
                Route("/api/2.1/unity-catalog/functions/{name}", self._function),
                Route("/api/2.0/vector-search/indexes/{name}", self._index),
                Route("/api/2.0/vector-search/indexes/{name}/query", self._query, methods=["GET", "POST"]),
                Route("/.well-known/databricks-config", self._not_found),
                Route("/{path:path}", self._not_found, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            ]
        )
        self._server, self._task, self.base_url = await serve_on_loopback(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        assert self._server is not None and self._task is not None
        self._server.should_exit = True
        await self._task

    # -- routes --------------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        return self.api_key is None or request.headers.get("authorization") == f"Bearer {self.api_key}"

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        received = ChatRequest(path=request.url.path, headers=dict(request.headers), body=body)
        self.requests.append(received)
        if not self._authorized(request):
            return JSONResponse({"error": {"message": "invalid api key"}}, status_code=401)
        problems = chat_request_problems(body)
        if problems:
            self.violations.extend(problems)
            return JSONResponse({"error": {"message": "; ".join(problems)}}, status_code=400)
        if not self.script:
            self.violations.append(f"unexpected request #{len(self.requests)}")
            return JSONResponse({"error": {"message": "no scripted reply left"}}, status_code=500)
        entry = self.script.pop(0)
        reply = entry(received) if callable(entry) else entry
        if reply.hold:
            await self.release.wait()
        if reply.status != 200:
            return JSONResponse({"error": {"message": reply.error}}, status_code=reply.status)
        calls = [(f"call_{self._next_id()}", name, json.dumps(args)) for name, args in reply.tool_calls]
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                self._chunks(body["model"], reply, calls, usage), media_type="text/event-stream"
            )
        return JSONResponse(self._completion(body["model"], reply, calls))

    async def _models(self, request: Request) -> Response:
        self.other_requests.append((request.method, request.url.path, dict(request.headers)))
        if not self._authorized(request):
            return JSONResponse({"error": {"message": "invalid api key"}}, status_code=401)
        return JSONResponse({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def _endpoint(self, request: Request) -> Response:
        self.other_requests.append((request.method, request.url.path, dict(request.headers)))
        if not self._authorized(request):
            return JSONResponse({"error_code": "UNAUTHENTICATED", "message": "bad token"}, status_code=401)
        name = request.path_params["name"]
        if name not in self.endpoints:
            return JSONResponse(
                {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"no endpoint {name}"}, status_code=404
            )
        return JSONResponse({"name": name, "state": {"ready": "READY", "config_update": "NOT_UPDATING"}})

    async def _function(self, request: Request) -> Response:
        self.other_requests.append((request.method, request.url.path, dict(request.headers)))
        info = self.functions.get(request.path_params["name"])
        if info is None:
            return JSONResponse(
                {
                    "error_code": "NOT_FOUND",
                    "message": f"Function {request.path_params['name']} does not exist",
                },
                status_code=404,
            )
        return JSONResponse(info)

    async def _index(self, request: Request) -> Response:
        self.other_requests.append((request.method, request.url.path, dict(request.headers)))
        info = self.indexes.get(request.path_params["name"])
        if info is None or not self._authorized(request):
            return JSONResponse({"error_code": "NOT_FOUND", "message": "no such index"}, status_code=404)
        return JSONResponse({key: value for key, value in info.items() if key != "rows"})

    async def _query(self, request: Request) -> Response:
        """A similarity search: the index's `rows` (its `columns`, then the score), best first."""
        self.other_requests.append((request.method, request.url.path, dict(request.headers)))
        info = self.indexes.get(request.path_params["name"])
        if info is None or not self._authorized(request):
            return JSONResponse({"error_code": "NOT_FOUND", "message": "no such index"}, status_code=404)
        body = await request.json()
        wanted = body.get("columns") or []
        rows = [[row.get(c) for c in wanted] + [row.get("score", 0.5)] for row in info.get("rows", [])]
        columns = [{"name": c} for c in [*wanted, "score"]]
        return JSONResponse(
            {
                "manifest": {"column_count": len(columns), "columns": columns},
                "result": {"row_count": len(rows[: body.get("num_results", 10)]), "data_array": rows},
            }
        )

    async def _not_found(self, request: Request) -> Response:
        self.other_requests.append((request.method, request.url.path, dict(request.headers)))
        return JSONResponse({"error_code": "NOT_FOUND", "message": "not here"}, status_code=404)

    # -- the wire format ---------------------------------------------------------------------

    def _next_id(self) -> int:
        self._calls += 1
        return self._calls

    @staticmethod
    def _completion(model: str, reply: Reply, calls: list[tuple[str, str, str]]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if calls:
            message["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                for cid, name, args in calls
            ]
        return {
            "id": f"chatcmpl-{secrets.token_hex(6)}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
        }

    @staticmethod
    async def _chunks(
        model: str, reply: Reply, calls: list[tuple[str, str, str]], usage: bool
    ) -> AsyncIterator[str]:
        base = {
            "id": f"chatcmpl-{secrets.token_hex(6)}",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
        }

        def frame(delta: dict[str, Any], finish: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return f"data: {json.dumps({**base, 'choices': [choice]})}\n\n"

        yield frame({"role": "assistant", "content": ""})
        for word in re.findall(r"\S+\s*", reply.text):  # a token at a time, spaces kept
            yield frame({"content": word})
        for index, (cid, name, args) in enumerate(calls):
            # Name first, then the arguments in two pieces, as real providers split them.
            head = {
                "index": index,
                "id": cid,
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            yield frame({"tool_calls": [head]})
            middle = len(args) // 2
            for piece in (args[:middle], args[middle:]):
                yield frame({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield frame({}, "tool_calls" if calls else "stop")
        if usage:
            counts = {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}
            yield f"data: {json.dumps({**base, 'choices': [], 'usage': counts})}\n\n"
        yield "data: [DONE]\n\n"


class RotatingDatabricksCredentials(CredentialsStrategy):
    """A databricks-sdk credentials strategy that issues a new bearer token on every ask, as an
    OAuth token refresh would: shows whether a client asks for headers per request."""

    def __init__(self) -> None:
        self.issued: list[str] = []

    def auth_type(self) -> str:
        return "rotating-test-token"

    def __call__(self, cfg: Any) -> Callable[[], dict[str, str]]:
        def headers() -> dict[str, str]:
            self.issued.append(f"dapi-rotating-{len(self.issued) + 1}")
            return {"Authorization": f"Bearer {self.issued[-1]}"}

        return headers
