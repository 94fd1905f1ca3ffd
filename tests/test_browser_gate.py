"""The browser tests' gate: a missing browser skips locally but fails where it must run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import REQUIRE_ENV

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]

A_BROWSER_TEST = """
from pathlib import Path

import tests.browser
from tests.browser import browser_tools  # noqa: F401

tests.browser.CHROMIUM = Path("/nonexistent/chromium")


def test_needs_the_browser(browser_tools):
    pass
"""


@pytest.fixture
def browser_test(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_needs_browser=A_BROWSER_TEST)
    return pytester


def test_a_missing_browser_fails_when_the_browser_tests_are_required(browser_test, monkeypatch):
    monkeypatch.setenv(REQUIRE_ENV, "1")
    result = browser_test.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*chromium is missing*apt-get install -y chromium*"])


def test_a_missing_browser_skips_with_its_reason_otherwise(browser_test, monkeypatch):
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    result = browser_test.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*chromium is missing*"])
