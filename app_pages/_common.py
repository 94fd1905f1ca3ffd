"""What every page of the lab shares: the market settings, the run store, caches and tables.

UI only: widgets, caching and layout. All the work is done by ``marl_market``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

import pandas as pd
import streamlit as st

from marl_market.core.config import TAKER_STYLES, TakerParams
from marl_market.core.facts import StylisedFacts
from marl_market.core.numbers import fmt  # the pages' number formatting (``ui.fmt``)
from marl_market.lab import workbench
from marl_market.lab.analysis import facts_table, sp500_reference
from marl_market.lab.experiments import DEFAULT_RETURN_INTERVAL, market_summary
from marl_market.store import RunStore, StoreError, check_writable, default_db_path
from marl_market.store.records import InputError, SimulateRequest, validate_simulate

T = TypeVar("T")

# Market settings shared by the Market, Stylised facts and Scenarios pages (session-state keys).
SETTINGS_DEFAULTS: dict[str, int] = {
    "makers": 2,
    "momentum": 4,
    "value": 3,
    "noise": 4,
    "steps": 5_000,
    "seed": 42,
    "return_interval": DEFAULT_RETURN_INTERVAL,
}
# The assets and their regimes (Market and Stylised facts pages). These defaults are
# ``SimulateRequest``'s, so they leave a run and its ID as they were before the controls existed.
ASSET_DEFAULTS: dict[str, int | float] = {
    "assets": 1,
    "venues": 1,  # venues each asset is listed on (a book per asset and venue)
    "correlation": 0.0,  # one off-diagonal correlation of the fundamentals' shocks
    "regime_switch": 0.0,  # per-step probability of leaving the current regime
}
MAX_ASSETS = 5
MAX_VENUES = 3
# The venue's charges, execution takers and arbitrageurs (Market and Stylised facts pages):
# ``SimulateRequest``'s defaults too (fees in bp here, fractions of notional there).
GAME_DEFAULTS: dict[str, int | float | str] = {
    "maker_rebate_bp": 0.0,
    "taker_fee_bp": 0.0,
    "takers": 0,
    "taker_target": TakerParams().target,
    "taker_style": TakerParams().style,
    "taker_horizon": TakerParams().horizon,
    "arbs": 0,
}
MAX_TAKERS = 6
MAX_ARBS = 4
ARBS_NEED_ASSETS = (
    "Arbitrageurs trade the spread of a pair of books: set Assets or Venues to 2 or more to "
    "add them."
)
# Other widget values that should survive a page switch.
PERSISTENT_KEYS = (
    *SETTINGS_DEFAULTS,
    *ASSET_DEFAULTS,
    *GAME_DEFAULTS,
    "asset",
    "learned_run",  # the Market page's trained policies (``_learned.LEARNED``)
    "spread_seeds",
    "live_warmup",
    "live_length",
    "live_return_after",
    "live_playing",
    "short_ban",
    "tobin_tax",
    "tobin_tax_bp",
    "compare_kinds",
    "compare_seeds",
    "compare_steps",
    "compare_tax_bp",
    "compare_asset",
    "sql_query",
    "runs_kind",
    "open_run_id",
    # The Train page's form and the training run it shows.
    "train_mode",
    "train_preset",
    "train_learners",
    "train_encoder",
    "train_assets",
    "train_iterations",
    "train_episode_steps",
    "train_episodes",
    "train_seed",
    "train_eval_seeds",
    "train_open_run",
    # The Sweeps page: the sweep it shows and the chart's choices.
    "sweep_open",
    "sweep_scenario",
    "sweep_metric",
    "sweep_x",
    "sweep_y",
)


def keep_widget_state() -> None:
    """Keep widget values across page switches.

    Streamlit forgets a widget's value when a run does not draw it (e.g. on another page);
    writing the value back through the Session State API makes it a plain session value that
    survives, and the widget picks it up again when its page is shown.
    """
    for key in PERSISTENT_KEYS:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def default(key: str, value: Any) -> None:
    """Give a widget's key its first value (widgets are then drawn without ``value=``, so a
    value set through session state - by a test or another page - never conflicts)."""
    st.session_state.setdefault(key, value)


# ------------------------------------------------------------------------------ the store
def db_path() -> str:
    """The run database this request uses (``$MARL_MARKET_DB`` or data/marl_market.duckdb)."""
    return str(default_db_path().expanduser().absolute())


def get_store(writable: bool = False) -> RunStore:
    """The run store (no connection is held; every operation opens the file briefly)."""
    path = check_writable(db_path()) if writable else db_path()
    return RunStore(path)


# ------------------------------------------------------------------------------ settings
def market_settings(multi_asset: bool = False) -> SimulateRequest:
    """The sidebar's market settings, validated; a bad combination stops the page with one
    clear error before anything is simulated or written.

    With ``multi_asset`` the sidebar also sets the number of assets, the correlation of their
    fundamentals, the regime switching, the venue's fees and the execution takers and
    arbitrageurs (pages that show one asset's market of the four-type ecology, e.g. the live
    market, leave them out and get a one-asset request without them).
    """
    for key, value in SETTINGS_DEFAULTS.items():
        default(key, value)
    if multi_asset:
        for key, value in {**ASSET_DEFAULTS, **GAME_DEFAULTS}.items():
            default(key, value)
    with st.sidebar:
        st.header("Market")
        st.slider("Market makers", 0, 8, key="makers")
        st.slider("Momentum traders", 0, 20, key="momentum")
        st.slider("Value traders", 0, 20, key="value")
        st.slider("Noise traders", 0, 20, key="noise")
        st.slider("Steps", 500, 50_000, step=500, key="steps")
        st.number_input("Seed", 0, 2**31 - 1, key="seed")
        st.slider("Return interval (steps)", 1, 50, key="return_interval")
        if multi_asset:
            st.subheader("Assets and regimes")
            assets, venues = st.columns(2)
            assets.slider(
                "Assets", 1, MAX_ASSETS, key="assets", help="Each asset has its own book."
            )
            venues.slider(
                "Venues",
                1,
                MAX_VENUES,
                key="venues",
                help="Venues each asset is listed on: a book per asset and venue, the venues of "
                "an asset sharing its fundamental, so arbitrageurs can trade across venues.",
            )
            st.slider(
                "Fundamental correlation",
                -0.95,
                0.95,
                step=0.05,
                key="correlation",
                disabled=int(st.session_state["assets"]) == 1,
                help="Correlation of every pair of assets' fundamental shocks (more than one "
                "asset).",
            )
            st.number_input(
                "Regime switch probability (per step)",
                0.0,
                1.0,
                step=0.001,
                format="%.4f",
                key="regime_switch",
                help="Probability, each step, of leaving the current regime (normal or stress); "
                "0 keeps the market normal throughout.",
            )
            game_settings()
    try:
        options: dict[str, Any] = {k: int(st.session_state[k]) for k in SETTINGS_DEFAULTS}
        if multi_asset:
            options.update(asset_options())
            options.update(game_options())
        return validate_simulate(**options)
    except InputError as error:
        st.error(f"Invalid market settings: {error}")
        st.stop()


def asset_options() -> dict[str, Any]:
    """The asset and regime widgets' values as ``SimulateRequest`` options.

    A correlation of 0 is sent as none at all (independent fundamentals), as ``marlsim simulate
    --assets N`` without ``--correlation`` does, so the app and the CLI find the same run.
    Raises ``InputError`` for a correlation no set of that many assets can have.
    """
    assets = int(st.session_state["assets"])
    correlation = round(float(st.session_state["correlation"]), 6)
    # Every pair equally correlated is a valid matrix only for rho >= -1 / (assets - 1); the
    # engine's own check would say "not positive semi-definite", which a slider user cannot use.
    if assets > 1 and correlation < -1.0 / (assets - 1) - 1e-9:
        raise InputError(
            f"{assets} assets cannot all be pairwise correlated at {correlation:g}: the "
            f"fundamental correlation must be at least {-1.0 / (assets - 1):.3g} with {assets} "
            "assets"
        )
    return {
        "assets": assets,
        "venues": int(st.session_state["venues"]),
        "correlation": correlation if assets > 1 and correlation != 0.0 else None,
        "regime_switch": float(st.session_state["regime_switch"]),
    }


def game_settings() -> None:
    """The sidebar's fees, execution takers and arbitrageurs (inside ``st.sidebar``)."""
    st.subheader("Fees, takers and arbitrageurs")
    st.number_input(
        "Maker rebate (bp)",
        0.0,
        100.0,
        step=0.5,
        key="maker_rebate_bp",
        help="Paid to the resting side of every trade, in basis points of its notional.",
    )
    st.number_input(
        "Taker fee (bp)",
        0.0,
        100.0,
        step=0.5,
        key="taker_fee_bp",
        help="Paid by the aggressor of every trade, in basis points of its notional.",
    )
    st.slider(
        "Execution takers",
        0,
        MAX_TAKERS,
        key="takers",
        help="Each must buy (even members) or sell (odd) a target quantity by a horizon; "
        "member i works asset i mod assets.",
    )
    no_takers = int(st.session_state["takers"]) == 0
    st.number_input(
        "Taker target (shares)",
        1,
        TakerParams().position_limit,
        step=50,
        key="taker_target",
        disabled=no_takers,
    )
    st.number_input(
        "Taker horizon (steps)",
        1,
        1_000_000,
        step=100,
        key="taker_horizon",
        disabled=no_takers,
        help="Steps each taker has for its target (capped at the run's length).",
    )
    st.selectbox(
        "Taker style",
        TAKER_STYLES,
        key="taker_style",
        disabled=no_takers,
        format_func=lambda style: {"twap": "TWAP", "pov": "POV (10% of volume)"}.get(style, style),
        help="TWAP keeps the fills on a straight line to the target; POV trades a share of the "
        "last step's volume. Both sweep what is left on the horizon's last step.",
    )
    one_book = one_book_market()
    st.slider(
        "Arbitrageurs",
        0,
        MAX_ARBS,
        key="arbs",
        disabled=one_book,
        help="Pair arbitrageurs trade the z-score of two books' log-price spread, both legs in "
        "one turn (two or more assets, or one asset on two or more venues).",
    )
    if one_book:
        st.caption(ARBS_NEED_ASSETS)


def game_options() -> dict[str, Any]:
    """The fee, taker and arbitrageur widgets' values as ``SimulateRequest`` options.

    Fees go from bp to fractions of notional, rounded so that 2 bp is the 0.0002 that
    ``marlsim simulate --taker-fee 0.0002`` sends (the same run ID). With one asset the
    arbitrageurs are left out, as the disabled slider says, rather than stopping the page.
    """
    return {
        "maker_rebate": round(float(st.session_state["maker_rebate_bp"]) / 1e4, 10),
        "taker_fee": round(float(st.session_state["taker_fee_bp"]) / 1e4, 10),
        "takers": int(st.session_state["takers"]),
        "taker_target": int(st.session_state["taker_target"]),
        "taker_style": str(st.session_state["taker_style"]),
        "taker_horizon": int(st.session_state["taker_horizon"]),
        "arbs": 0 if one_book_market() else int(st.session_state["arbs"]),
    }


def one_book_market() -> bool:
    """Whether the sidebar's market has a single book (one asset on one venue): nothing for an
    arbitrageur to pair."""
    return int(st.session_state["assets"]) * int(st.session_state.get("venues", 1)) == 1


def asset_choice(n_assets: int, listings: Sequence[int] | None = None, key: str = "asset") -> int:
    """The asset (book) the page shows: a selector when the run has more than one, else 0.

    ``listings`` (``MarketConfig.listings``) names each book by its asset and venue when the
    assets are listed on several venues.
    """
    if n_assets <= 1:
        return 0
    if st.session_state.get(key, 0) not in range(n_assets):
        st.session_state[key] = 0  # left over from a run with more assets
    default(key, 0)
    return int(
        st.selectbox(
            "Asset",
            range(n_assets),
            key=key,
            format_func=lambda a: book_name(a, listings),
            help="The asset whose market this page shows.",
        )
    )


def book_name(book: int, listings: Sequence[int] | None = None) -> str:
    """``asset 2``, or ``asset 1 on venue 0`` when the assets are listed on several venues."""
    if listings is None:
        return f"asset {book}"
    fundamental = listings[book]
    return f"asset {fundamental} on venue {list(listings)[:book].count(fundamental)}"


# ------------------------------------------------------------------------------ caches
class _LruCache:
    """A small thread-safe LRU map shared by all sessions (results are treated as read-only)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)


@st.cache_resource(show_spinner=False)
def _work_cache() -> _LruCache:
    # Not st.cache_data: that replays the elements a cached function draws and refuses a
    # progress bar drawn from outside it, while long work here should show its progress.
    # A 50,000-step market with its snapshots is ~15 MB: a dozen stays well under 200 MB.
    return _LruCache(maxsize=12)


def cached_work(key: tuple, label: str, compute: Callable[[workbench.Progress], T]) -> T:
    """``compute(progress)`` once per ``key``; on a miss it runs inside ``st.status`` with a
    progress bar, on a hit it returns at once and draws nothing."""
    cache = _work_cache()
    hit = cache.get(key)
    if hit is not None:
        return hit
    with st.status(label, expanded=False) as status:
        bar = st.progress(0.0)
        started = time.perf_counter()

        def progress(done: int, total: int) -> None:
            bar.progress(min(1.0, done / max(total, 1)), text=f"{done:,} / {total:,}")

        try:
            value = compute(progress)
        except Exception:
            status.update(label=f"{label} failed", state="error")
            raise
        status.update(
            label=f"{label} done in {time.perf_counter() - started:.1f} s", state="complete"
        )
    cache.put(key, value)
    return value


def market_run(request: SimulateRequest) -> workbench.MarketRun:
    """The market of ``request``, simulated with book snapshots and stored (cached)."""
    db = db_path()
    try:
        store = get_store(writable=True)
        return cached_work(
            ("market", request.model_dump_json(), db),
            f"Simulating {request.steps:,} steps",
            lambda progress: workbench.run_market(request, store, progress=progress),
        )
    except StoreError as error:
        st.error(str(error))
        st.stop()


def market_overview(request: SimulateRequest, run: workbench.MarketRun) -> dict:
    """``experiments.market_summary`` of ``run`` (cached): every asset's facts, the measured
    correlation of the fundamentals' returns and the regime's stress share and switches."""
    return cached_work(
        ("market_summary", request.model_dump_json(), db_path()),
        "Measuring every asset",
        lambda progress: market_summary(run.result, run.return_interval, run.facts),
    )


def asset_facts(overview: dict, asset: int) -> StylisedFacts:
    """The stylised facts of one asset, from a run's ``market_overview``."""
    return StylisedFacts.from_dict(overview["assets"][asset]["facts"])


@st.cache_resource(show_spinner=False)
def sp500() -> StylisedFacts:
    """The S&P 500 reference facts (computed once per server)."""
    return sp500_reference()


@st.cache_data(show_spinner=False, max_entries=16)
def open_run(db: str, run_id: str) -> workbench.StoredRun:
    """A stored run's tables. Cached by (database, run ID): a stored run never changes, and
    its ID is a hash of what it is."""
    return workbench.open_run(RunStore(db), run_id)


@st.cache_data(show_spinner=False, max_entries=16)
def stored_facts(db: str, run_id: str) -> StylisedFacts | None:
    """A stored run's facts (stored ones, or computed from its steps)."""
    return workbench.run_facts(open_run(db, run_id))


# ------------------------------------------------------------------------------ tables
def facts_frame(facts: StylisedFacts) -> pd.DataFrame:
    """The facts beside the S&P 500's, one row per fact."""
    rows = facts_table(facts, sp500())
    return pd.DataFrame(rows, columns=["fact", "simulated", "S&P 500 daily 1999-2018"])


def summary_frame(summary: dict) -> pd.DataFrame:
    """One scenario's comparison (metric -> statistics) as a table with the CI spelled out."""
    rows = []
    for metric, s in summary.items():
        ci = (
            f"[{s['ci_low']:.3g}, {s['ci_high']:.3g}]"
            if s.get("ci_low") is not None and s.get("ci_high") is not None
            else "-"
        )
        sign = ""
        if s.get("documented") and s.get("expected_sign"):
            sign = "+" if s["expected_sign"] > 0 else "-"
        rows.append(
            {
                "metric": metric,
                "scenario mean": fmt(s.get("mean"), "{:.3g}"),
                "baseline mean": fmt(s.get("baseline_mean"), "{:.3g}"),
                "difference": fmt(s.get("diff_mean"), "{:+.3g}"),
                "95% CI": ci,
                "expected sign": sign,
                "seeds with that sign": fmt(s.get("sign_fraction"), "{:.0%}") if sign else "",
                "n": s.get("n"),
            }
        )
    return pd.DataFrame(rows)


def run_link(run_id: str) -> str:
    """A link that opens ``run_id`` on the Runs page (a new session, as a shared link would)."""
    return f"runs?run_id={run_id}"


def train_link(run_id: str) -> str:
    """A link that opens training run ``run_id`` on the Train page (its progress, evaluation
    and policy; the Runs page shows a finished one's metrics and exports)."""
    return f"train?run_id={run_id}"
