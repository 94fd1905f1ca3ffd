"""marl-market: the lab in the browser (``streamlit run app.py`` or ``marlsim dashboard``).

This file is the router: it finds the pages in ``app_pages/`` and hands over to the one the
user chose. A page is a file named ``<order>_<name>.py`` (``3_scenarios.py`` -> "Scenarios" at
/scenarios; Market, the default page, is at /), so adding one - the Train page, say - is adding
one file. A link with ``?run_id=ID`` (to /runs or to /) opens that run on the Runs page.

Why ``app_pages/`` and not ``pages/``: Streamlit (1.67) still switches to its legacy multipage
mode whenever a folder named ``pages`` sits next to the entry script. In a fresh server the
first visit of a deep link (e.g. /scenarios) then says "Page not found" and can run the page
without this router, and under AppTest every rerun bypasses the router. Another name avoids it.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app_pages import _common as ui

PAGES_DIR = Path(__file__).resolve().parent / "app_pages"
DEFAULT_PAGE = "market"
# Optional per-page icon and title; a page without an entry gets a generic icon and a title
# made from its file name.
ICONS = {
    "market": ":material/candlestick_chart:",
    "stylised_facts": ":material/query_stats:",
    "scenarios": ":material/crisis_alert:",
    "runs": ":material/database:",
    "train": ":material/model_training:",
    "sweeps": ":material/grid_on:",
}


def discover_pages() -> list[st.Page]:
    """One ``st.Page`` per ``app_pages/<order>_<name>.py``, in order (``DEFAULT_PAGE`` at /)."""
    found = []
    for path in PAGES_DIR.glob("*_*.py"):
        order, _, name = path.stem.partition("_")
        if order.isdigit():
            found.append((int(order), name, path))
    return [
        st.Page(
            path,
            title=name.replace("_", " ").capitalize(),
            icon=ICONS.get(name, ":material/article:"),
            url_path=name,
            default=name == DEFAULT_PAGE,
        )
        for _, name, path in sorted(found)
    ]


st.set_page_config(page_title="marl-market", page_icon=":material/monitoring:", layout="wide")
ui.keep_widget_state()
pages = discover_pages()
page = st.navigation(pages)
if page.url_path == "" and "run_id" in st.query_params:
    # A shared link to the front page (/?run_id=ID) opens that run. (The default page has no
    # path of its own, so links name the Runs page: /runs?run_id=ID.)
    runs = next(p for p in pages if p.url_path == "runs")
    st.switch_page(runs, query_params={"run_id": st.query_params["run_id"]})
page.run()
