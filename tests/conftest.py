"""Fixtures shared by several test modules."""

from pathlib import Path

import pytest

from tests.browser import browser_tools  # noqa: F401  (the browser tests' gate)


@pytest.fixture
def db(tmp_path, monkeypatch) -> Path:
    """A fresh run database for the app under test: ``$MARL_MARKET_DB`` points at it."""
    path = tmp_path / "app.duckdb"
    monkeypatch.setenv("MARL_MARKET_DB", str(path))
    return path
