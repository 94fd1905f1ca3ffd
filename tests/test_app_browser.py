"""The lab in a real browser: ``streamlit run app.py`` driven by headless Chromium.

Opens the Scenarios page, clicks "Pull market makers" and checks that the live spread metric
blows up several-fold without a reload, as a user would see it. Keeps a screenshot in
``test-artifacts/app_scenarios.png`` (git-ignored) and the timings next to it.

Needs ``/usr/bin/chromium`` (Debian's ``chromium``) and the pip package ``playwright`` (driving
that binary; ``playwright install`` is never needed); skips with the reason if either is
missing, or fails under ``MARL_MARKET_REQUIRE_BROWSER=1`` (README's test command, CI).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
SERVER_START_TIMEOUT = 60  # seconds
PAGE_TIMEOUT_MS = 90_000  # first render: imports and the live run's warm-up
CRASH_TIMEOUT_MS = 30_000

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(browser_tools, tmp_path):
    """``streamlit run app.py`` on a free loopback port with its own database; always stopped."""
    port = _free_port()
    log = (tmp_path / "streamlit.log").open("w")
    command = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true"]
    command += ["--server.address", "127.0.0.1", "--server.port", str(port)]
    command += ["--browser.gatherUsageStats", "false"]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "MARL_MARKET_DB": str(tmp_path / "app.duckdb")},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopping it stops everything it started
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read() == b"ok":
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(
                    "streamlit did not start:\n" + (tmp_path / "streamlit.log").read_text()[-2000:]
                )
            time.sleep(0.3)
        yield url, process.pid
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def _spread(page, label: str = "Spread (ticks)") -> float | None:
    """The value of a spread metric as shown, or None while it is not a number."""
    metric = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator(
            '[data-testid="stMetricLabel"]', has_text=re.compile(f"^{re.escape(label)}$")
        )
    )
    if metric.count() == 0:
        return None
    text = metric.first.locator('[data-testid="stMetricValue"]').inner_text().strip()
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_over(pid: int, page, seconds: float) -> float:
    start = _cpu_seconds(pid)
    page.wait_for_timeout(seconds * 1000)
    return _cpu_seconds(pid) - start


def test_pulling_the_makers_in_the_browser_shows_the_crash(server):
    server, pid = server
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    timings: dict[str, float] = {}
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.on("pageerror", lambda error: errors.append(str(error)))
            started = time.perf_counter()
            page.goto(f"{server}/scenarios", timeout=PAGE_TIMEOUT_MS)
            button = page.get_by_role("button", name="Pull market makers")
            button.wait_for(state="visible", timeout=PAGE_TIMEOUT_MS)
            page.wait_for_function(
                """() => [...document.querySelectorAll('[data-testid="stMetric"]')]
                    .some(m => m.innerText.includes('Spread (ticks)'))""",
                timeout=PAGE_TIMEOUT_MS,
            )
            timings["first_render_s"] = time.perf_counter() - started
            page.wait_for_timeout(2_000)  # a few live ticks, so there is a pre-pull history

            # The yardstick is the page's own: the pre-pull mean spread it shows after the pull
            # (one chunk before the pull can itself be a volatile spell).
            clicked = time.perf_counter()
            button.click()
            deadline = time.monotonic() + CRASH_TIMEOUT_MS / 1000
            before = after = None
            while time.monotonic() < deadline:
                before, after = _spread(page, "Pre-pull spread (ticks)"), _spread(page)
                if before is not None and after is not None and after >= 4 * before:
                    break
                page.wait_for_timeout(50)
            timings["click_to_crash_s"] = time.perf_counter() - clicked
            assert before is not None and after is not None and after >= 4 * before, (
                before,
                after,
            )
            page.get_by_text("makers pulled at step").first.wait_for(timeout=CRASH_TIMEOUT_MS)
            assert button.is_disabled()  # once per run
            page.wait_for_timeout(1_500)  # let the charts catch up for the screenshot
            page.screenshot(path=str(ARTIFACTS / "app_scenarios.png"), full_page=True)

            # Restart reruns only the live fragment: a fresh run, ready for another pull.
            page.get_by_role("button", name="Restart").click()
            page.wait_for_function(
                """() => [...document.querySelectorAll('button')]
                    .some(b => b.innerText.includes('Pull market makers') && !b.disabled)""",
                timeout=CRASH_TIMEOUT_MS,
            )
            page.wait_for_timeout(1_500)  # a tick or two of the new run
            assert page.locator('[data-testid="stException"]').count() == 0

            # A paused page uses no CPU: no timer reruns it, the step stands still.
            timings["server_cpu_s_per_s_playing"] = _cpu_over(pid, page, 4) / 4
            page.get_by_text("Live", exact=True).click()
            page.wait_for_timeout(2_000)  # the last tick lands
            step = page.locator('[data-testid="stMetric"]').first.inner_text()
            timings["server_cpu_s_per_s_paused"] = idle = _cpu_over(pid, page, 5) / 5
            assert page.locator('[data-testid="stMetric"]').first.inner_text() == step
            assert idle < 0.02, timings  # a Streamlit server at rest
        finally:
            browser.close()
    timings.update(spread_before=before, spread_after=after)
    (ARTIFACTS / "app_scenarios_timings.json").write_text(json.dumps(timings, indent=2))
    assert not errors, errors


def _set_number(page, label: str, value: int) -> None:
    field = page.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Enter")
    page.wait_for_timeout(700)  # the rerun the change causes


def test_the_train_page_follows_a_tiny_training_live(server):
    """Train a tiny maker from the page: the progress panel follows the subprocess on its own
    timer and the evaluation appears without a reload; afterwards no timer is left running."""
    server, pid = server
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 3000})
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{server}/train", timeout=PAGE_TIMEOUT_MS)
            page.get_by_text("No training runs yet").wait_for(timeout=PAGE_TIMEOUT_MS)
            page.get_by_text("Custom", exact=True).click()
            page.get_by_label("Assets", exact=True).wait_for(timeout=CRASH_TIMEOUT_MS)
            page.get_by_text("Advanced settings").click()
            for label, value in (
                ("Iterations", 2),
                ("Episode steps", 50),
                ("Episodes per iteration", 1),
                ("Evaluation seeds", 2),
            ):
                _set_number(page, label, value)
            page.get_by_text("2 iterations of 1 x 50 steps").wait_for(timeout=CRASH_TIMEOUT_MS)
            page.get_by_role("button", name="Train", exact=True).click()
            # The panel's own timer (no reload, no click) shows the run to its evaluation.
            page.get_by_text("Learned vs fixed maker").wait_for(timeout=120_000)
            page.get_by_text("paired 95% CI").first.wait_for(timeout=CRASH_TIMEOUT_MS)
            assert page.locator('[data-testid="stException"]').count() == 0
            page.wait_for_timeout(1_500)  # the charts settle for the screenshot
            page.screenshot(path=str(ARTIFACTS / "app_train.png"), full_page=True)
            # Done: the page registered no timer, so the server rests.
            idle = _cpu_over(pid, page, 4) / 4
            assert idle < 0.05, idle
        finally:
            browser.close()
    assert not errors, errors
