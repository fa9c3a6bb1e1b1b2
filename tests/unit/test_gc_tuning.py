"""The serving process's collector settings: start-up objects frozen, a larger young generation."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from app.gc_tuning import YOUNG_GENERATION_THRESHOLD, tune_gc_for_serving


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_tuning_freezes_what_exists_and_enlarges_the_young_generation(restored_gc: None) -> None:
    existing = [object()]  # a container: tracked by the collector
    gc.unfreeze()
    _, middle, oldest = gc.get_threshold()
    tune_gc_for_serving()
    assert gc.get_freeze_count() > 0
    # Frozen: no collection looks at it any more.
    assert not any(obj is existing for obj in gc.get_objects())
    assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, middle, oldest)
