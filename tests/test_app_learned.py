"""Trained policies on the Market page (AppTest): a finished training run's learners play in
the sidebar's market, stored as a run of kind env; the Train page sends a run there."""

from __future__ import annotations

import pytest

from marl_market.rl import runs
from marl_market.rl.ippo import TrainConfig
from marl_market.store import RunStore
from tests.test_app import start

TINY = {"iterations": 1, "episode_steps": 50, "episodes_per_iteration": 1, "hidden": 16}


@pytest.fixture
def trained(db):
    """A finished one-asset maker run in the page's database."""
    return runs.run_training(db, TrainConfig(**TINY), eval_seeds=2).run_id


def text(at) -> str:
    return " ".join(m.value for m in at.markdown)


def test_the_learned_maker_plays_in_the_sidebars_market(db, trained):
    at = start(learned_run=trained, noise=6)
    assert not at.error, [e.value for e in at.error]
    assert f"policies of training run [`{trained}`]" in text(at)
    assert "(maker 15, beside" in text(at)  # the slot after the 15 fixed traders (2/4/3/6)
    env_runs = RunStore(db).list_runs(kind="env")
    assert len(env_runs) == 1 and env_runs[0]["seed"] == 42
    # The choice lists the run; none goes back to the fixed rules (a run of kind simulate).
    options = at.selectbox(key="learned_run").options
    assert any(o.startswith(trained) for o in options)
    at.selectbox(key="learned_run").set_value("").run()
    assert not at.error
    assert len(RunStore(db).list_runs(kind="simulate")) == 1


def test_a_run_trained_on_other_assets_is_refused_with_one_error(db, trained):
    at = start(learned_run=trained, assets=2)
    assert len(at.error) == 1 and "not a finished run trained on 2 asset(s)" in at.error[0].value
    assert RunStore(db).list_runs(kind="env") == []


def test_the_train_page_sends_a_finished_run_to_the_market_page(db, trained):
    at = start("app_pages/5_train.py", query={"run_id": trained})
    at.button(key="train_play").click().run()
    assert not at.exception, at.exception
    assert at.session_state["learned_run"] == trained
    assert f"policies of training run [`{trained}`]" in text(at)
