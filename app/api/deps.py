"""Typed dependencies: the process's resources and the caller's identity.

They are all `async def` although none awaits: FastAPI runs a plain `def` dependency in its
thread pool, a thread hop per dependency per request (about 2 ms of CPU per turn for these).
"""

from __future__ import annotations

import hmac
import re
from typing import Annotated

from fastapi import Depends, Path, Request

from app.errors import InvalidInput, Unauthorized
from app.lifespan import Resources
from app.services.conversation_cache import EncodedConversations
from app.services.hosted_state import HostedState
from app.services.runs import RunService
from app.services.threads import ThreadService
from app.settings import AuthMode, LimitSettings, canonical_owner

THREAD_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
_THREAD_ID = re.compile(THREAD_ID_PATTERN)


async def get_resources(request: Request) -> Resources:
    resources: Resources = request.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_runs(resources: ResourcesDep) -> RunService:
    return resources.runs


async def get_threads(resources: ResourcesDep) -> ThreadService:
    return resources.threads


async def get_limits(resources: ResourcesDep) -> LimitSettings:
    return resources.settings.limits


async def get_default_ttl(resources: ResourcesDep) -> int | None:
    return resources.settings.retention.thread_ttl_seconds


async def get_hosted_state(resources: ResourcesDep) -> HostedState:
    return resources.hosted_state


async def get_conversations(resources: ResourcesDep) -> EncodedConversations:
    return resources.conversations


RunsDep = Annotated[RunService, Depends(get_runs)]
HostedStateDep = Annotated[HostedState, Depends(get_hosted_state)]
DefaultTtlDep = Annotated[int | None, Depends(get_default_ttl)]
ThreadsDep = Annotated[ThreadService, Depends(get_threads)]
ConversationsDep = Annotated[EncodedConversations, Depends(get_conversations)]
LimitsDep = Annotated[LimitSettings, Depends(get_limits)]


async def current_owner(request: Request, resources: ResourcesDep) -> str:
    """The caller's identity, from the transport only (never from the body)."""
    owner = canonical_owner(_owner_from_transport(request, resources))
    request.state.owner = owner  # for the access log line
    return owner


def _owner_from_transport(request: Request, resources: Resources) -> str:
    auth = resources.settings.auth
    if auth.mode is AuthMode.NONE:
        return auth.local_owner
    if auth.mode is AuthMode.API_KEY:
        presented = request.headers.get("x-api-key")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if presented is None and scheme.lower() == "bearer":
            presented = token.strip()
        if presented:
            for key, owner in auth.api_key_owners().items():
                if hmac.compare_digest(key.encode(), presented.encode()):
                    return owner
        raise Unauthorized("Send a valid API key as 'Authorization: Bearer <key>' or 'X-API-Key'.")
    # Databricks Apps: the platform authenticates the user and forwards who it is.
    email = request.headers.get("x-forwarded-email", "").strip()
    forwarded = email or request.headers.get("x-forwarded-user", "").strip()
    if not forwarded:
        raise Unauthorized(
            "No X-Forwarded-Email or X-Forwarded-User header: with AUTH_MODE=databricks the"
            " service must be reached through Databricks Apps."
        )
    return forwarded


OwnerDep = Annotated[str, Depends(current_owner)]


async def valid_thread_id(
    thread_id: Annotated[str, Path(description="1-128 of A-Z a-z 0-9 . _ : -", examples=["t1"])],
) -> str:
    if not _THREAD_ID.fullmatch(thread_id):
        raise InvalidInput(
            "thread_id must be 1-128 characters of letters, digits, '.', '_', ':' or '-'.",
        )
    return thread_id


ThreadIdDep = Annotated[str, Depends(valid_thread_id)]
