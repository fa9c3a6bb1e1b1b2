"""The system prompt: the seed's cyber-security routine, with its `{tools}` placeholder filled."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.tools import BaseTool

from app.settings import ModelSettings

DEFAULT_SYSTEM_PROMPT = """You are a cyber-security assistant. You help analysts find out who is \
behind security threats, using these tools:

{tools}

Routine: when asked who is behind a threat, call get_cyber_threat_info with the threat type \
asked about, then call get_user_info with the source IP it returns, and answer with the user's \
name, department, email and location. Answer follow-up questions from what this conversation \
already found; call a tool again only for something new. If a tool finds nothing, say so \
plainly and never invent data."""


def render_system_prompt(template: str, tools: Sequence[BaseTool]) -> str:
    listing = "\n".join(f"- {t.name}: {' '.join((t.description or '').split())}" for t in tools)
    # replace, not str.format: a prompt may contain other braces (JSON examples).
    return template.replace("{tools}", listing or "(no tools)")


def system_prompt_template(settings: ModelSettings) -> str:
    """SYSTEM_PROMPT, else the contents of SYSTEM_PROMPT_FILE, else the demo's routine."""
    if settings.system_prompt is not None:
        return settings.system_prompt
    if settings.system_prompt_file is not None:
        return settings.system_prompt_file.read_text(encoding="utf-8")
    return DEFAULT_SYSTEM_PROMPT
