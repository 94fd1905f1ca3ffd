"""Build ``dashboard.html``: the browser page that runs ``page.py`` under stlite.

The page loads stlite (Streamlit 1.40.1 compiled for the browser) and Pyodide from the jsDelivr
CDN; the project's own sources - ``marl_market/__init__.py``, every ``marl_market/core/*.py``,
``marl_market/plots.py`` and the page - are embedded verbatim in the ``files`` option of
``stlite.mount``, so they are importable as ``marl_market.*`` inside Pyodide and there is no
second copy of the model to keep in step. The output depends only on those sources and the
constants below: building twice gives the same bytes.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # marl_market/
REPO_ROOT = PACKAGE_DIR.parent
DEFAULT_OUT = REPO_ROOT / "dashboard.html"
BUILD_COMMAND = "python -m marl_market.lite"

# @stlite/mountable 0.75.0 is the last release with the ``stlite.mount`` API; it bundles
# Streamlit 1.40.1. Its successor (@stlite/browser 1.x) needs Pyodide 0.29.
STLITE_VERSION = "0.75.0"
STLITE_BASE_URL = f"https://cdn.jsdelivr.net/npm/@stlite/mountable@{STLITE_VERSION}/build/"
STLITE_JS_URL = STLITE_BASE_URL + "stlite.js"
STLITE_CSS_URL = STLITE_BASE_URL + "stlite.css"
# Subresource integrity of the two files above (sha384 of the npm package's build/ files), so a
# tampered CDN copy is refused by the browser instead of run. The browser test checks them.
STLITE_JS_SRI = "sha384-z1Q1Rnrt3fCLv2cNnp4e1Ub7iAUywhrIEnm4lp+4MDEWocbd8XrlA6XHxSqQ7cvp"
STLITE_CSS_SRI = "sha384-9yzTg5YmM5R/QwVKPDbw6LDYh4IYlbRHaR6eiaGg1SvCGkzu/HiyaBS2+vyhgo4n"
# stlite 0.75.0 defaults to Pyodide 0.26.2; 0.27.7 (Python 3.12, numpy 2.0.2) is the one the
# browser test mirrors and runs.
PYODIDE_VERSION = "0.27.7"
PYODIDE_URL = f"https://cdn.jsdelivr.net/pyodide/v{PYODIDE_VERSION}/full/pyodide.js"
# Not in Pyodide's own package set, so micropip fetches it from PyPI: pinned to the release
# the page is tested with (plotly 6+ changed defaults Streamlit 1.40 does not expect).
REQUIREMENTS = ("plotly==5.24.1",)
# The page is mounted at the top of Pyodide's home directory: Streamlit puts the script's
# directory on sys.path, which makes the embedded ``marl_market`` package importable.
ENTRYPOINT = "streamlit_app.py"
# A page for viewers: no "Deploy" button or developer menu (there is no server to deploy).
STREAMLIT_CONFIG = {"client.toolbarMode": "viewer"}


def embedded_sources() -> dict[str, Path]:
    """Where each embedded file goes in Pyodide's home directory -> its source, sorted."""
    files = {
        ENTRYPOINT: PACKAGE_DIR / "lite" / "page.py",
        "marl_market/__init__.py": PACKAGE_DIR / "__init__.py",
        "marl_market/plots.py": PACKAGE_DIR / "plots.py",
    }
    for path in (PACKAGE_DIR / "core").glob("*.py"):
        files[f"marl_market/core/{path.name}"] = path
    return dict(sorted(files.items()))


def _script_json(value: object) -> str:
    """JSON that is safe inside an HTML <script> element (no "</script>", no "<!--")."""
    text = json.dumps(value, indent=1, sort_keys=True, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_dashboard() -> str:
    """The text of ``dashboard.html`` for the current sources."""
    sources = embedded_sources()
    files = {name: path.read_text(encoding="utf-8") for name, path in sources.items()}
    options = {
        "entrypoint": ENTRYPOINT,
        "pyodideUrl": PYODIDE_URL,
        "requirements": list(REQUIREMENTS),
        "streamlitConfig": STREAMLIT_CONFIG,
    }
    listed = ", ".join(sorted(_repo_path(path) for path in sources.values()))
    return _TEMPLATE.format(
        command=BUILD_COMMAND,
        sources=html.escape(listed),
        stlite_css=STLITE_CSS_URL,
        stlite_css_sri=STLITE_CSS_SRI,
        stlite_js=STLITE_JS_URL,
        stlite_js_sri=STLITE_JS_SRI,
        options=_script_json(options),
        files=_script_json(files),
    )


def _repo_path(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def build_dashboard(out_path: str | Path = DEFAULT_OUT) -> Path:
    """Write ``dashboard.html`` to ``out_path`` (only if its bytes change) and return the path."""
    out = Path(out_path)
    data = render_dashboard().encode("utf-8")
    # Leave an up-to-date file untouched, so a rebuild does not change its mtime.
    if not out.exists() or out.read_bytes() != data:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    return out


# Doubled braces are literal braces for str.format. The files travel as a JSON data block
# (never executed) and are handed to stlite.mount, which writes them into Pyodide's home.
_TEMPLATE = """\
<!doctype html>
<!--
  GENERATED FILE - do not edit. Rebuild with: {command}
  Embedded sources: {sources}.
  Open it through any static web server (e.g. `python -m http.server`, then
  http://localhost:8000/dashboard.html): browsers refuse the Web Worker stlite needs to pages
  opened from file://. It loads stlite and Pyodide from cdn.jsdelivr.net and plotly from PyPI.
-->
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, shrink-to-fit=no">
<title>marl-market dashboard</title>
<link rel="stylesheet" href="{stlite_css}" integrity="{stlite_css_sri}" crossorigin="anonymous">
</head>
<body>
<div id="file-warning" hidden style="font-family: sans-serif; padding: 1em; background: #fff3cd">
  This page was opened from a file. Browsers do not run the Python worker it needs from
  file:// pages: serve the folder instead, e.g. <code>python -m http.server</code>, and open
  <code>http://localhost:8000/dashboard.html</code>.
</div>
<div id="root"></div>
<script type="application/json" id="marl-market-options">
{options}
</script>
<script type="application/json" id="marl-market-files">
{files}
</script>
<script src="{stlite_js}" integrity="{stlite_js_sri}" crossorigin="anonymous"></script>
<script>
if (location.protocol === "file:") {{
  document.getElementById("file-warning").hidden = false;
}}
const options = JSON.parse(document.getElementById("marl-market-options").textContent);
options.files = JSON.parse(document.getElementById("marl-market-files").textContent);
stlite.mount(options, document.getElementById("root"));
</script>
</body>
</html>
"""
