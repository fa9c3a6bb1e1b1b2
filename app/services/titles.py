"""Short thread titles from a thread's first exchange: written by the chat model when it is a
real one, by a heuristic offline (and whenever the model fails or says nothing usable)."""

from __future__ import annotations

import asyncio
import logging
import re

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from app.agent.model_errors import as_model_call_error

logger = logging.getLogger(__name__)

TITLE_MAX = 60
HEURISTIC_MAX = 48
EXCERPT = 1500  # characters of the question and of the answer the model is shown
PROMPT = (
    "Write a title of 3 to 7 words for the conversation below, naming its subject the way a"
    " person would file it. Answer with the title only: no quotes, no final period."
)
# Openers that say nothing about the subject: "Hi! Can you please tell me who ..." is titled "Who ...".
_FILLER = re.compile(
    r"^(?:(?:hi|hello|hey|ok(?:ay)?|so|please|thanks?|thank you)\b[\s,!.]*"
    r"|(?:can|could|would|will) you(?: please)?(?: tell me| show me| help me(?: find)?)?\b[\s,]*"
    r"|(?:tell|show) me\b[\s,]*"
    r"|i (?:want|need|would like) to know\b[\s,]*)",
    re.IGNORECASE,
)


def heuristic_title(question: str) -> str:
    """The question's first sentence without greetings and "can you tell me", capitalised, cut
    at a word boundary (the chat page titles a new thread the same way until this one lands)."""
    plain = " ".join(question.split())
    line = plain
    while (shorter := _FILLER.sub("", line, count=1)) != line:
        line = shorter
    sentence = re.match(r"^.+?[.?!](?=\s|$)", line)
    line = (sentence.group(0) if sentence else line).removesuffix(".").removesuffix("!")
    line = line or plain
    line = line[:1].upper() + line[1:]
    if len(line) <= HEURISTIC_MAX:
        return line
    cut = line[: HEURISTIC_MAX - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > 20 else cut).rstrip() + "…"


def _clean(text: str) -> str:
    """The model's title on one line, without quotes, a "Title:" label or a final period."""
    line = " ".join(text.split())
    line = re.sub(r"^(?:title\s*:\s*)", "", line, flags=re.IGNORECASE).strip("\"'“”*# ").removesuffix(".")
    if len(line) > TITLE_MAX:
        line = line[: TITLE_MAX - 1].rstrip() + "…"
    return line


class Titler:
    """Titles for threads. `model` None: the heuristic only (the offline model writes no titles)."""

    def __init__(self, model: BaseChatModel | None, *, timeout_seconds: float) -> None:
        self._model = model
        self._timeout = timeout_seconds

    async def title(self, question: str, answer: str) -> str:
        if self._model is None:
            return heuristic_title(question)
        request = [
            SystemMessage(PROMPT),
            HumanMessage(f"Question: {question[:EXCERPT]}\n\nAnswer: {answer[:EXCERPT]}"),
        ]
        try:
            reply = await asyncio.wait_for(self._model.ainvoke(request), self._timeout)
        except Exception as exc:
            failure = as_model_call_error(exc)
            if failure is None:
                raise  # not a failure of the model: a bug, to be seen
            # A title is a nicety: the model failing is no reason to fail the request.
            logger.warning("the model wrote no title (%s); titled from the question", failure.message)
            return heuristic_title(question)
        text = reply.content if isinstance(reply.content, str) else ""
        return _clean(text) or heuristic_title(question)
