"""Every setting with a type or a range refuses a wrong value when the settings are read (at
start), with a message naming its environment variable: never later, as a 500 per request."""

from __future__ import annotations

import types
import typing
from enum import Enum
from pathlib import Path

import pytest
from pydantic import AliasChoices, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from app.cli import _config_error_text
from app.settings import Settings


def _env_names(info: FieldInfo) -> list[str]:
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [str(alias)] if alias else []


def _bad_value(info: FieldInfo) -> str | None:
    """A value the field must refuse, or None when any text is acceptable."""
    annotation = info.annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    kind = args[0] if isinstance(annotation, types.UnionType) and len(args) == 1 else annotation
    if kind is bool:
        return "maybe"
    if kind in (int, float):
        return "lots"
    if isinstance(kind, type) and issubclass(kind, Enum):
        return "no-such-choice"
    if typing.get_origin(kind) is typing.Literal:
        return "no-such-choice"
    if kind in (str, SecretStr, Path) or typing.get_origin(kind) is list:
        return None
    raise AssertionError(f"no wrong value known for {kind!r}: extend this test")


CASES = [
    (group, name, env, bad)
    for group, group_info in Settings.model_fields.items()
    for name, info in typing.cast(type[BaseSettings], group_info.annotation).model_fields.items()
    for env in _env_names(info)[:1]
    if (bad := _bad_value(info)) is not None
]


@pytest.mark.parametrize(("group", "field", "env", "bad"), CASES, ids=[c[2] for c in CASES])
def test_a_wrong_value_fails_at_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, group: str, field: str, env: str, bad: str
) -> None:
    monkeypatch.setenv(env, bad)
    with pytest.raises(ValidationError) as failure:
        Settings()
    assert env in _config_error_text(failure.value)


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    names = [
        env
        for group_info in Settings.model_fields.values()
        for info in typing.cast(type[BaseSettings], group_info.annotation).model_fields.values()
        for env in _env_names(info)
    ]
    missing = [env for env in names if f"`{env}`" not in readme]
    assert not missing, f"settings missing from the README's settings table: {missing}"
