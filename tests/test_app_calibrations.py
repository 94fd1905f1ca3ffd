"""The Stylised facts page's calibrations (AppTest): a stored fit beside its target, and the
fitted market simulated under the run ID ``marlsim simulate --calibration`` gives it."""

from __future__ import annotations

import pytest

from marl_market.lab.analysis import sp500_returns
from marl_market.lab.experiments import simulation_run_id
from marl_market.scale.calibrate import calibrate, with_params
from marl_market.store import RunStore
from marl_market.store.records import SimulateRequest
from tests.test_app import SMALL, start

PAGE = "app_pages/2_stylised_facts.py"


@pytest.fixture
def fitted(db):
    return calibrate(
        sp500_returns(), "sp500", ("noise_intensity",), seeds=2, budget=5, steps=2_000,
        store=RunStore(db), workers=1,
    )  # fmt: skip


def test_without_a_calibration_the_page_says_how_to_make_one(db):
    at = start(PAGE)
    assert any("marlsim calibrate" in c.value for c in at.caption)


def test_a_calibration_shows_its_fit_and_simulates_the_fitted_market(db, fitted):
    at = start(PAGE)
    assert at.selectbox(key="calibration_run").value == fitted.run_id
    table = next(d.value for d in at.dataframe if "moment" in d.value.columns)
    assert list(table["moment"])[:2] == ["excess kurtosis", "hill tail index"]
    at.button(key="simulate_fitted").click().run()
    assert not at.exception and not at.error
    request = SimulateRequest(**SMALL)
    config = with_params(request.to_config(), fitted.params)
    run_id = simulation_run_id(config, request.seed, request.return_interval)
    assert RunStore(db).get_run(run_id) is not None
    assert any(run_id in m.value for m in at.markdown)
    at.run()  # still shown on the next rerun
    assert any(run_id in m.value for m in at.markdown)
