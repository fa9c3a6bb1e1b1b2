"""Feedback on a turn: thumbs up or down on one completed turn (by its run id), with an optional
comment. Shown on the chat page and counted in `/admin/stats`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import OwnerDep, ResourcesDep, ThreadIdDep
from app.api.schemas import ErrorBody
from app.api.threads import ERRORS
from app.memory.feedback import FeedbackRecord, Rating
from app.services.feedback import FeedbackService

router = APIRouter(prefix="/threads", tags=["feedback"])

_RATINGS: dict[str, Rating] = {"up": Rating.UP, "down": Rating.DOWN}


async def get_feedback(resources: ResourcesDep) -> FeedbackService:
    return resources.feedback


FeedbackDep = Annotated[FeedbackService, Depends(get_feedback)]


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"rating": "up"}]})

    rating: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=4000)


class FeedbackOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: uuid.UUID
    rating: Literal["up", "down"]
    comment: str | None
    updated_at: datetime


class FeedbackList(BaseModel):
    model_config = ConfigDict(frozen=True)

    feedback: list[FeedbackOut]


def _out(record: FeedbackRecord) -> FeedbackOut:
    return FeedbackOut(
        run_id=record.run_id,
        rating="up" if record.rating > 0 else "down",
        comment=record.comment,
        updated_at=record.updated_at,
    )


@router.put(
    "/{thread_id}/feedback/{run_id}",
    responses={**ERRORS, 404: {"model": ErrorBody, "description": "thread_not_found or turn_not_found"}},
)
async def give_feedback(
    thread_id: ThreadIdDep, run_id: uuid.UUID, body: FeedbackIn, owner: OwnerDep, feedback: FeedbackDep
) -> FeedbackOut:
    """Rate one completed turn of the thread (the `run_id` a turn returns); again replaces it."""
    record = await feedback.give(
        owner=owner, thread_id=thread_id, run_id=run_id, rating=_RATINGS[body.rating], comment=body.comment
    )
    return _out(record)


@router.get("/{thread_id}/feedback", responses=ERRORS)
async def list_feedback(thread_id: ThreadIdDep, owner: OwnerDep, feedback: FeedbackDep) -> FeedbackList:
    """The feedback given on the thread's turns."""
    return FeedbackList(
        feedback=[_out(r) for r in await feedback.of_thread(owner=owner, thread_id=thread_id)]
    )
