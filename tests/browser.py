"""What the browser tests share: Debian's Chromium, the flags it needs here, and the gate.

The gate: without Chromium or playwright a browser test skips with the reason - unless
``MARL_MARKET_REQUIRE_BROWSER=1`` is set (README's test command and CI set it), where a skip
would hide a missing install step, so it fails and names what to install.
"""

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
# Without the background-networking flags Chromium keeps dialling out on a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REQUIRE_ENV = "MARL_MARKET_REQUIRE_BROWSER"


def missing_browser_tool() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (Debian: apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install -r requirements-dev.txt)"
    return None


@pytest.fixture(scope="module")
def browser_tools() -> None:
    """Skip without Chromium or playwright, or fail under MARL_MARKET_REQUIRE_BROWSER=1."""
    missing = missing_browser_tool()
    if missing and os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{missing}; {REQUIRE_ENV}=1 requires the browser tests to run")
    if missing:
        pytest.skip(missing)
