"""``dashboard.html`` in a real browser, offline: headless Chromium, the CDN served from a mirror.

The page is built fresh, served over http from 127.0.0.1 (stlite's worker does not run from
file://), and every request to the CDN is answered from the local mirror that
``tests/lite_mirror.py`` builds from the npm and PyPI registries. Any other request off this
machine is aborted and recorded; the test fails if the page asked for anything the mirror lacks.
It clicks "Pull market makers" and checks that the spread the page shows blows up, keeps a
screenshot and writes the timings to ``test-artifacts/`` (git-ignored).

Needs ``/usr/bin/chromium`` (Debian's ``chromium``) and the pip package ``playwright``; skips with
the reason if either is missing, or fails instead with ``MARL_MARKET_REQUIRE_BROWSER=1`` (for CI,
where a skip would hide a missing install step). Also needs npm and pip to reach their
registries the first time: about 135 MB of downloads into ``~/.cache/marl-market/stlite-mirror``,
which later runs reuse.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import threading
import time
from urllib.parse import urlsplit

import pytest

from marl_market.lite.build import build_dashboard
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.lite_mirror import Mirror, content_type, ensure_mirror

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
# Generous: the first render took 30-65 s on a 2-core machine (Pyodide boot, package installs).
FIRST_RENDER_TIMEOUT_MS = 300_000
RERUN_TIMEOUT_MS = 120_000
COMPARE_TIMEOUT_MS = 300_000

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def mirror(browser_tools):
    """The CDN mirror (built on first use, then cached outside the repository)."""
    started = time.perf_counter()
    built = ensure_mirror()
    return built, time.perf_counter() - started


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass  # no access log on stderr


@pytest.fixture
def site(tmp_path):
    """A freshly built dashboard.html served over http on a free loopback port."""
    build_dashboard(tmp_path / "dashboard.html")
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/dashboard.html"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class MirrorRouter:
    """A Playwright route handler: loopback passes, the CDN is answered from the mirror, and
    anything else is aborted and remembered (``missing``)."""

    def __init__(self, mirror: Mirror):
        self.mirror = mirror
        self.missing: list[str] = []
        self.requests = 0
        self.bytes = 0

    def __call__(self, route) -> None:
        url = route.request.url
        if urlsplit(url).hostname in LOOPBACK:
            route.continue_()
            return
        path = self.mirror.resolve(url)
        if path is None:
            self.missing.append(url)
            route.abort("blockedbyclient")
            return
        self.requests += 1
        self.bytes += path.stat().st_size
        # The worker fetches cross-origin (CORS), and wasm must be application/wasm to stream.
        headers = {"Content-Type": content_type(path), "Access-Control-Allow-Origin": "*"}
        route.fulfill(status=200, path=path, headers=headers)


def _metric(page, label: str):
    """The st.metric whose label is exactly ``label``."""
    exact = re.compile(rf"^\s*{re.escape(label)}\s*$")
    return page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=exact)
    )


def _number(text: str) -> float:
    return float(text.strip().replace(",", ""))


def test_dashboard_runs_offline_and_pulling_the_makers_blows_up_the_spread(mirror, site):
    from playwright.sync_api import expect, sync_playwright

    test_started = time.perf_counter()
    the_mirror, mirror_seconds = mirror
    ARTIFACTS.mkdir(exist_ok=True)
    router = MirrorRouter(the_mirror)
    console: list[str] = []

    timings: dict[str, object] = {"mirror_ready_s": round(mirror_seconds, 1)}
    timings["mirror_build_s"] = the_mirror.manifest.get("build_seconds")

    def diagnose(what: str) -> str:
        errors = [line for line in console if line.startswith(("error", "pageerror"))]
        return (
            f"{what}\nrequests the mirror could not answer: {router.missing}\n"
            f"console errors (last 20): {errors[-20:]}"
        )

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            # context.route also sees the Web Worker's requests (Pyodide, wheels).
            context.route("**/*", router)
            page = context.new_page()
            page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
            page.on("pageerror", lambda err: console.append(f"pageerror: {err}"))

            started = time.perf_counter()
            page.goto(site)
            spread = _metric(page, "Spread (ticks)")
            try:
                expect(spread).to_be_visible(timeout=FIRST_RENDER_TIMEOUT_MS)
            except AssertionError as error:
                page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
                raise AssertionError(diagnose("the app never rendered")) from error
            timings["first_render_s"] = round(time.perf_counter() - started, 1)
            caption = page.get_by_text(re.compile(r"simulated [\d,]+ steps in [\d.]+ s"))
            expect(caption).to_be_visible(timeout=RERUN_TIMEOUT_MS)
            match = re.search(r"simulated ([\d,]+) steps in ([\d.]+) s", caption.inner_text())
            assert match and match.group(1) == "2,000", caption.inner_text()
            timings["simulate_2000_steps_in_pyodide_s"] = float(match.group(2))
            before = _number(spread.locator('[data-testid="stMetricValue"]').inner_text())

            started = time.perf_counter()
            page.get_by_role("button", name="Pull market makers").click()
            pre_pull = _metric(page, "Pre-pull spread (ticks)")
            try:
                expect(pre_pull).to_be_visible(timeout=RERUN_TIMEOUT_MS)
            except AssertionError as error:
                raise AssertionError(diagnose("the pull did not re-render")) from error
            timings["pull_rerender_s"] = round(time.perf_counter() - started, 1)
            after = _number(spread.locator('[data-testid="stMetricValue"]').inner_text())
            delta = spread.locator('[data-testid="stMetricDelta"]').inner_text()
            timings.update(spread_before=before, spread_after=after, spread_delta=delta.strip())
            assert after > 3 * before, f"spread {before} -> {after} after the pull ({delta})"
            assert "vs pre-pull" in delta
            expect(page.get_by_text(re.compile(r"Makers pulled at step"))).to_be_visible()

            started = time.perf_counter()
            page.get_by_role("button", name="Compare scenarios").click()
            table = page.locator("table").filter(has_text="flash crash")
            try:
                expect(table).to_be_visible(timeout=COMPARE_TIMEOUT_MS)
            except AssertionError as error:
                raise AssertionError(diagnose("the comparison never showed")) from error
            timings["compare_rerender_s"] = round(time.perf_counter() - started, 1)
            expect(table).to_contain_text("Spread blow-up")
            compared = page.get_by_text(re.compile(r"compared in [\d.]+ s")).inner_text()
            timings["compare_in_pyodide_s"] = float(re.search(r"([\d.]+) s", compared).group(1))

            # Streamlit scrolls inside its own container: a tall window shows the whole page.
            page.set_viewport_size({"width": 1400, "height": 3600})
            page.wait_for_timeout(1_000)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"))
            timings["chromium"] = browser.version
        finally:
            (ARTIFACTS / "dashboard_console.log").write_text("\n".join(console) + "\n")
            browser.close()

    timings["cdn_requests_served"] = router.requests
    timings["cdn_mb_served"] = round(router.bytes / 1e6, 1)
    timings["test_total_s"] = round(time.perf_counter() - test_started, 1)
    (ARTIFACTS / "dashboard_timings.json").write_text(json.dumps(timings, indent=1) + "\n")
    print("dashboard timings:", json.dumps(timings))
    assert not router.missing, f"the page asked for files the mirror lacks: {router.missing}"
