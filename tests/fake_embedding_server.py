"""A local embeddings server speaking the two wire protocols the service calls: OpenAI's
`POST /v1/embeddings` and a Databricks Model Serving embeddings endpoint's
`POST /serving-endpoints/<name>/invocations`. (Beside tests/fakes.py, which is full.)

Its vectors are real ones (the lexical embedder's, at the size asked for), so semantic search
through it works; it records every request, answers 400 to a request that breaks the protocol
and 401 without the expected bearer token, and `fail_with` makes it answer that status."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.agent.embeddings import LexicalEmbeddings
from tests.fakes import serve_on_loopback


class FakeEmbeddingServer:
    def __init__(self, *, dims: int, token: str, endpoint: str = "databricks-gte-large-en") -> None:
        self.embedder = LexicalEmbeddings(dims)
        self.token = token
        self.endpoint = endpoint
        self.requests: list[tuple[str, dict[str, Any]]] = []  # path, body
        self.fail_with: int | None = None
        self.base_url = ""
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> FakeEmbeddingServer:
        app = Starlette(
            routes=[
                Route("/v1/embeddings", self._openai, methods=["POST"]),
                Route("/serving-endpoints/{name}/invocations", self._databricks, methods=["POST"]),
            ]
        )
        self._server, self._task, self.base_url = await serve_on_loopback(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None and self._task is not None
        self._server.should_exit = True
        await self._task

    async def _answer(self, request: Request, *, needs_model: bool) -> Response:
        body = await request.json()
        self.requests.append((request.url.path, body))
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"error": {"message": "invalid token"}}, status_code=401)
        texts = body.get("input")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return JSONResponse({"error": {"message": "`input` must be a list of strings"}}, status_code=400)
        if needs_model and not isinstance(body.get("model"), str):
            return JSONResponse({"error": {"message": "`model` is required"}}, status_code=400)
        if self.fail_with is not None:
            return JSONResponse({"error": {"message": "failing on purpose"}}, status_code=self.fail_with)
        vectors = self.embedder.embed_documents(texts)
        # Out of order on purpose: clients must place each vector by its `index`.
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)][::-1]
        return JSONResponse({"object": "list", "data": data, "model": body.get("model", self.endpoint)})

    async def _openai(self, request: Request) -> Response:
        return await self._answer(request, needs_model=True)

    async def _databricks(self, request: Request) -> Response:
        if request.path_params["name"] != self.endpoint:
            return JSONResponse({"error_code": "RESOURCE_DOES_NOT_EXIST"}, status_code=404)
        return await self._answer(request, needs_model=False)
