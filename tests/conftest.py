"""Fixtures shared by several test modules."""

from tests.browser import browser_tools  # noqa: F401  (the browser tests' gate)
