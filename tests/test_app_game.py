"""Fees, execution takers and arbitrageurs in the lab: the sidebar's controls, the Market page's
execution section, the reward components per agent and the positions per asset (AppTest, as in
test_app.py)."""

from __future__ import annotations

from app_pages._common import ARBS_NEED_ASSETS
from marl_market.core.config import MarketConfig
from marl_market.lab.experiments import simulation_run_id
from marl_market.store import RunStore
from marl_market.store.records import validate_simulate
from tests.test_app import SMALL, start, values
from tests.test_app_assets import chart, page_run_id, table_with

TERMS = ("pnl", "inventory penalty", "liquidity bonus", "delay", "unhedged")


def test_default_settings_keep_the_run_id_and_show_no_takers(db):
    at = start()
    # The core's default market, as it was before any of these controls existed.
    assert page_run_id(at) == simulation_run_id(MarketConfig(steps=SMALL["steps"]), 42, 5)
    assert at.number_input(key="taker_fee_bp").value == 0.0
    assert at.number_input(key="maker_rebate_bp").value == 0.0
    assert at.slider(key="takers").value == 0 and at.number_input(key="taker_target").disabled
    assert table_with(at, "shortfall (bp)") is None  # no execution section
    assert table_with(at, "asset 0") is None  # one asset: no positions table
    rewards = table_with(at, "liquidity bonus")
    assert set(rewards["kind"]) == {"maker", "momentum", "value", "noise"}
    assert (rewards["fees paid"] == 0).all() and (rewards["rebates"] == 0).all()


def test_the_controls_make_a_run_with_takers_and_fees(db):
    at = start()
    at.slider(key="takers").set_value(2).run()  # which enables the takers' settings
    at.number_input(key="taker_target").set_value(300)
    at.number_input(key="taker_fee_bp").set_value(2.0)
    at.number_input(key="maker_rebate_bp").set_value(1.0)
    at.run()
    assert not at.exception, at.exception
    # The run `marlsim simulate --takers 2 --taker-target 300 --taker-fee 0.0002
    # --maker-rebate 0.0001` stores: bp in the app, fractions of notional in the CLI.
    cli = validate_simulate(**SMALL, takers=2, taker_target=300, taker_fee=2e-4, maker_rebate=1e-4)
    assert page_run_id(at) == simulation_run_id(cli.to_config(), 42, 5)
    stored = {r["run_id"]: r for r in RunStore(db).list_runs()}
    assert stored[page_run_id(at)]["population"] == "2/4/3/4 +2 takers"

    execution = table_with(at, "shortfall (bp)")
    assert list(execution["side"]) == ["buy", "sell"]
    # The horizon is capped at the 1,000-step run, and TWAP sweeps the rest on its last step.
    assert list(execution["target"]) == [300, 300] and list(execution["filled"]) == [300, 300]
    assert execution["shortfall (bp)"].notna().all()
    schedule = chart(at, "execution_chart")
    names = [t.get("name") for t in schedule["data"]]
    assert "TWAP line" in names and "target" in names
    for agent in execution["agent"]:
        line = next(t for t in schedule["data"] if t.get("name", "").startswith(f"taker {agent} "))
        assert values(line["y"])[-1] == 300  # its trades add up to what it filled

    rewards = table_with(at, "liquidity bonus").set_index("agent")
    # The reward is the sum of its terms (each rounded to 0.1 in the table).
    assert (rewards["reward"] - rewards[list(TERMS)].sum(axis=1)).abs().max() < 0.5
    takers = rewards[rewards["kind"] == "taker"]
    assert (takers["delay"] < 0).all() and (takers["fees paid"] > 0).all()
    assert (takers["rebates"] == 0).all()  # takers only take
    makers = rewards[rewards["kind"] == "maker"]
    assert (makers["rebates"] > 0).all() and (makers["liquidity bonus"] > 0).all()


def test_arbitrageurs_need_two_assets_and_say_so(db):
    at = start(arbs=2)
    assert at.slider(key="arbs").disabled
    assert ARBS_NEED_ASSETS in [c.value for c in at.sidebar.caption]
    assert not at.error  # left out with one asset, not an error
    rewards = table_with(at, "unhedged")
    assert "arb" not in set(rewards["kind"])

    at.slider(key="assets").set_value(2).run()
    assert not at.exception, at.exception
    assert not at.slider(key="arbs").disabled
    assert ARBS_NEED_ASSETS not in [c.value for c in at.sidebar.caption]
    rewards = table_with(at, "unhedged")
    arbs = rewards[rewards["kind"] == "arb"]
    assert len(arbs) == 2 and (arbs["unhedged"] <= 0).all()
    positions = table_with(at, "asset 1")
    assert list(positions.columns) == ["agent", "kind", "asset 0", "asset 1", "total"]
    assert (positions["asset 0"] + positions["asset 1"] == positions["total"]).all()


def test_the_game_settings_survive_a_page_switch(db):
    at = start(takers=1, taker_style="pov", taker_fee_bp=1.5)
    market_run = page_run_id(at)
    at.switch_page("app_pages/2_stylised_facts.py").run()
    assert not at.exception, at.exception
    assert at.slider(key="takers").value == 1 and at.selectbox(key="taker_style").value == "pov"
    assert at.number_input(key="taker_fee_bp").value == 1.5
    caption = " ".join(c.value for c in at.caption)
    assert market_run in caption  # the same market on both pages
