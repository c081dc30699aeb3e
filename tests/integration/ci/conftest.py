"""Fixtures the runner-style CI tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.ci.test_action_support import remove_local_images


@pytest.fixture
def cleanup() -> Iterator[list[str]]:
    """Image references a test made locally; removed after it."""
    refs: list[str] = []
    yield refs
    remove_local_images(refs)
