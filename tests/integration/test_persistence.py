"""Memory survives a restart of the service: thread, transcript, checkpoints, and the agent's
memory of earlier turns."""

from __future__ import annotations

from tests.conftest import make_settings, running_app, unique


async def test_thread_survives_an_app_restart(database_url: str) -> None:
    thread_id = unique()
    settings = make_settings(database_url)
    async with running_app(settings) as (_, client):
        first = (
            await client.post(
                f"/threads/{thread_id}/messages", json={"content": "Who committed the latest malware threat?"}
            )
        ).json()
        before = {
            "thread": (await client.get(f"/threads/{thread_id}")).json(),
            "messages": (await client.get(f"/threads/{thread_id}/messages")).json(),
            "history": (await client.get(f"/threads/{thread_id}/history")).json(),
        }

    async with running_app(settings) as (_, client):
        assert (await client.get(f"/threads/{thread_id}")).json() == before["thread"]
        assert (await client.get(f"/threads/{thread_id}/messages")).json() == before["messages"]
        assert (await client.get(f"/threads/{thread_id}/history")).json() == before["history"]
        follow = (
            await client.post(
                f"/threads/{thread_id}/messages", json={"content": "What was their IP address?"}
            )
        ).json()
        ip = next(m for m in first["messages"] if m.get("name") == "get_user_info")["content"]
        assert ip.split("ip_address: ")[1].split(";")[0] in follow["messages"][-1]["content"]
