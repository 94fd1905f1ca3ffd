"""``marl_market.core`` must import and work without the heavy dependencies.

The core runs in the browser (Pyodide) with numpy and the standard library only. A fresh
interpreter installs an import hook that makes the heavy packages unimportable, imports every
module under ``marl_market/core/`` and drives an ``OrderBook``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

BLOCKED = (
    "torch",
    "torch_geometric",
    "pandas",
    "duckdb",
    "streamlit",
    "pydantic",
    "scipy",
    "plotly",
    "arch",
    "ray",
)

SCRIPT = textwrap.dedent(
    """
    import importlib
    import importlib.abc
    import pkgutil
    import sys

    BLOCKED = frozenset({blocked!r})


    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path=None, target=None):
            if fullname.partition(".")[0] in BLOCKED:
                raise ImportError(f"{{fullname}} is blocked: core must not import it")
            return None


    # Anything a site hook imported already would bypass the finder: forget it first.
    for name in list(sys.modules):
        if name.partition(".")[0] in BLOCKED:
            del sys.modules[name]
    sys.meta_path.insert(0, Blocker())

    import marl_market.core

    names = []
    for info in pkgutil.walk_packages(marl_market.core.__path__, "marl_market.core."):
        importlib.import_module(info.name)
        names.append(info.name)
    assert "marl_market.core.book" in names, names

    leaked = sorted(n for n in sys.modules if n.partition(".")[0] in BLOCKED)
    assert not leaked, leaked

    from marl_market.core.book import Order, OrderBook

    book = OrderBook()
    book.submit(Order("sell", 5, 101, agent_id=1))
    book.submit(Order("sell", 3, 102, agent_id=2))
    book.submit(Order("buy", 4, 99, agent_id=3))
    assert (book.best_bid(), book.best_ask()) == (99, 101)
    trades = book.submit(Order("buy", 7, None, agent_id=4))
    assert [(t.price, t.qty) for t in trades] == [(101, 5), (102, 2)], trades
    assert book.best_ask() == 102 and book.order_qty(2) == 1
    assert book.cancel(2) == 1 and book.best_ask() is None and len(book) == 1

    print("imported:", " ".join(names))
    print("OK")
    """
).format(blocked=BLOCKED)


def test_core_imports_without_heavy_dependencies():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.stdout.strip().endswith("OK"), proc.stdout
