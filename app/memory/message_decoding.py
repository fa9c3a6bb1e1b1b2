"""Decoding a stored list of messages as the serializer does, with less work per message.

A cold read of a long thread's state decodes its whole conversation: 1,200 messages for a
500-turn thread, about 11 ms, most of a read. For each message the library's msgpack hook imports
the message's module by name, checks its (module, class) against the allowlist, then builds it
with `cls(**fields)` (pydantic validation and LangChain's validators). The validation is what
makes the result exact (it is not an identity: `AIMessage` drops a tool call's `extras`), so it
stays; the import and the allowlist check are done once per class instead (a class the library
always allows is looked up once and kept). Everything else goes to the serializer's own hook, so
what is decoded, what is blocked and what is warned about stay the library's decisions.

`tests/unit/test_message_decoding.py` checks the result against `serde.loads_typed`.
"""

from __future__ import annotations

import importlib
from typing import Any

import ormsgpack
from langgraph.checkpoint.serde.base import SerializerProtocol

from app.memory.langgraph_internals import EXT_PYDANTIC_V2, SAFE_MSGPACK_TYPES, msgpack_ext_hook

_OPTIONS = ormsgpack.OPT_NON_STR_KEYS


class ListDecoder:
    """`serde.loads_typed` for blobs the saver wrote, with message classes looked up once."""

    def __init__(self, serde: SerializerProtocol) -> None:
        self.serde = serde
        self._library_hook = msgpack_ext_hook(serde)  # None: a serializer of another kind
        self._classes: dict[tuple[str, str], type[Any]] = {}

    def __call__(self, typed: tuple[str, bytes]) -> Any:
        if self._library_hook is None or typed[0] != "msgpack":
            return self.serde.loads_typed(typed)
        return ormsgpack.unpackb(typed[1], ext_hook=self._hook, option=_OPTIONS)

    def _hook(self, code: int, data: bytes) -> Any:
        assert self._library_hook is not None
        if code != EXT_PYDANTIC_V2:
            return self._library_hook(code, data)
        try:
            module, name, fields, *_ = ormsgpack.unpackb(data, ext_hook=self._hook, option=_OPTIONS)
        except Exception:  # noqa: BLE001 - the library's own fallback decides, as for any object
            return self._library_hook(code, data)
        cls = self._classes.get((module, name))
        if cls is None:
            if (module, name) not in SAFE_MSGPACK_TYPES:
                return self._library_hook(code, data)  # allowlists, warnings, blocks: the library's
            cls = self._classes[(module, name)] = getattr(importlib.import_module(module), name)
        # As the library builds a pydantic object: validated, else as given.
        try:
            return cls(**fields)
        except Exception:  # noqa: BLE001 - the library's rule: any failure builds it unvalidated
            return cls.model_construct(**fields)
