"""A stored run as one self-contained HTML file (``marlsim report``, the Runs page's download).

The report holds the run's config, its stylised facts beside the S&P 500's, its metrics, and the
same plotly figures the app shows. plotly.js is embedded once, inline, so the file opens offline
and can be mailed or archived; no other resource is fetched.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime

import plotly.graph_objects as go

from marl_market import plots
from marl_market.core.facts import acf_confidence_band
from marl_market.core.numbers import fmt
from marl_market.lab import workbench
from marl_market.lab.analysis import facts_table, sp500_reference
from marl_market.store import RunStore, code_version

REPORT_TEMPLATE = "plotly_white"
_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1200px; color: #222; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
code, pre { background: #f6f6f6; padding: 0.1rem 0.3rem; border-radius: 3px; }
pre { padding: 0.6rem; overflow-x: auto; font-size: 0.8rem; }
.meta td { text-align: left; }
.note { color: #666; font-size: 0.85rem; }
"""


def _table(header: list[str] | None, rows: list[list[object]], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header or ())
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    cls = f' class="{css}"' if css else ""
    thead = f"<thead><tr>{head}</tr></thead>" if header else ""  # a key-value table has none
    return f"<table{cls}>{thead}<tbody>{body}</tbody></table>"


def _cell(value: object) -> str:
    if value is None or isinstance(value, float):
        return fmt(value, "{:.4g}")
    return str(value)


class _Figures:
    """Renders figures to HTML divs; plotly.js goes inline with the first one only."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, fig: go.Figure) -> str:
        self.count += 1
        # An explicit template: inside the app, importing Streamlit makes its own template the
        # default, and that one leaves the colours to Streamlit's frontend (black on a page).
        fig.update_layout(template=REPORT_TEMPLATE)
        return fig.to_html(
            full_html=False,
            include_plotlyjs=self.count == 1,
            config={"displaylogo": False, "responsive": True},
        )


def build_report(store: RunStore, run_id: str, book: bool = True) -> str:
    """The HTML report of stored run ``run_id`` (``StoreError`` if there is none).

    With ``book``, a simulation or scenario run short enough to replay
    (``workbench.REPLAY_MAX_STEPS``) also gets its order-book heatmap, rebuilt by replaying it.
    """
    run = workbench.open_run(store, run_id)
    row = run.row
    figure = _Figures()
    parts = [
        f"<h1>marl-market run <code>{html.escape(run_id)}</code></h1>",
        _table(
            None,
            [
                ["run ID", run_id],
                ["kind", row["kind"]],
                ["scenario", row.get("scenario")],
                ["seed", row["seed"]],
                ["steps", row["n_steps"]],
                ["created (UTC)", str(row["created_at"])[:19]],
                ["code version", _code_note(row["code_version"])],
                ["baseline run", row.get("parent_run_id")],
                ["database", str(store.path)],
            ],
            css="meta",
        ),
        "<p class='note'>Reopen it: <code>marlsim runs show "
        f"{html.escape(run_id)}</code> or "
        f"<code>{html.escape(workbench.share(run_id)['sql'])}</code>"
        "</p>",
    ]
    facts = workbench.run_facts(run)
    if facts is not None:
        parts.append("<h2>Stylised facts beside the S&amp;P 500</h2>")
        parts.append(
            _table(
                ["fact", "this run", "S&P 500 daily 1999-2018"],
                [list(r) for r in facts_table(facts, sp500_reference())],
            )
        )
        parts.append(
            f"<p class='note'>{facts.n_returns:,} log returns of the mid, one every "
            f"{facts.return_interval} steps.</p>"
        )
    summaries = (row.get("summary") or {}).get("summaries")
    if summaries:
        parts.append("<h2>Scenarios against their baselines</h2>")
        parts.append(figure(plots.compare_figure(summaries)))
        for kind, summary in summaries.items():
            parts.append(f"<h3>{html.escape(kind)}</h3>")
            parts.append(_summary_table(summary))
    if run.metrics:
        parts.append("<h2>Metrics</h2>")
        parts.append(_table(["metric", "value"], [[k, v] for k, v in sorted(run.metrics.items())]))
    if run.has_steps:
        parts.append("<h2>Price, spread and volume</h2>")
        parts.append(figure(plots.market_figure(run.steps)))
        parts.append(figure(plots.depth_figure(run.steps)))
        if len(run.agent_steps["step"]):
            parts.append("<h2>Agents</h2>")
            parts.append(figure(plots.agents_figure(run.agent_steps, run.agents["kind"])))
        if facts is not None:
            returns = workbench.returns_of(run.asset_series("mid"), run.return_interval)
            parts.append("<h2>Returns</h2>")
            parts.append(figure(plots.return_distribution_figure(returns)))
            parts.append(figure(plots.qq_figure(returns)))
            band = acf_confidence_band(facts.n_returns)
            parts.append(
                figure(plots.acf_figure(facts.acf_abs, facts.acf_raw, band, run.return_interval))
            )
        if book:
            parts.append(_book_section(run, figure))
    parts.append("<h2>Config</h2>")
    config = json.dumps(row["config"], indent=2, sort_keys=True)
    parts.append(f"<pre>{html.escape(config, quote=False)}</pre>")
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(
        f"<p class='note'>Generated {generated} by marl-market {html.escape(code_version())}.</p>"
    )
    title = f"marl-market run {html.escape(run_id)}"
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )


def _summary_table(summary: dict) -> str:
    rows = []
    for metric, s in summary.items():
        ci = (
            f"[{s['ci_low']:.3g}, {s['ci_high']:.3g}]"
            if s.get("ci_low") is not None and s.get("ci_high") is not None
            else None
        )
        rows.append([metric, s.get("mean"), s.get("baseline_mean"), s.get("diff_mean"), ci])
    return _table(["metric", "scenario", "baseline", "difference", "95% CI"], rows)


def _book_section(run: workbench.StoredRun, figure: _Figures) -> str:
    try:
        book = workbench.replay_book(run)
    except ValueError as error:  # a compare run, a run too long to replay, or a changed model
        return f"<p class='note'>Order book not shown: {html.escape(str(error))}</p>"
    steps, prices, bids, asks = book.grid()
    return (
        "<h2>Order book (replayed)</h2>"
        + figure(plots.book_heatmap_figure(steps, prices, bids, asks, book.step, book.mid))
        + f"<p class='note'>Best {book.levels} levels per side every {book.every} steps, rebuilt "
        "by replaying the run and checked against its stored prices.</p>"
    )


def _code_note(stored: str | None) -> str:
    """The code version a run was made by, and whether that is the code running now."""
    current = code_version()
    if stored == current:
        return f"{stored} (this code)"
    return f"{stored} - made by different code than this ({current})"
