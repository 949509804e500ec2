"""The HTML report, rendered by headless Chromium: every plot must be drawn."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

import iformer
from rampsearch.reporting.report import build_report, interval_bars
from rampsearch.reporting.report_file import write_report
from rampsearch.study import storage as study_lib
from search_spaces import Budget

SMALL = iformer.preset("small")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def make_study(tmp_path):
    location = study_lib.StudyLocation("rep", study_lib.default_storage_url(tmp_path / "rep"),
                                       tmp_path)
    settings = study_lib.StudySettings(
        base="iformer_small", space="monotone", budget=Budget(4_800_000_000),
        data="synthetic", proxy={"epochs": 3}, sampler="tpe",
        seed=0, scheduler="none")
    study = study_lib.create_or_check_study(location, settings,
                                            optuna.samplers.RandomSampler(seed=1), resume=False)
    study_lib.write_run_file(location, settings, trials=6)
    ramps = [SMALL.attention_heads] + [
        [1] * 3 + [3] * 3 + [heads] * 9 + [last] * 3
        for heads, last in ((5, 6), (6, 8), (7, 9), (4, 10), (8, 11))]
    for index, ramp in enumerate(ramps):
        trial = study.ask()
        for block, heads in enumerate(ramp):  # parameters, so importances can be computed
            trial.suggest_int(f"b{block:02d}", heads, heads)
        config = SMALL.with_ramp(ramp)
        role = "baseline" if index == 0 else "candidate"
        attrs = {"role": role, "ramp": ramp, "flops": iformer.count_flops(config),
                 "params": iformer.count_params(config), "high_ratios": config.high_ratios(),
                 "within_budget": iformer.count_flops(config) <= 4.8e9, "status": "completed",
                 "epochs_reached": 3, "top1": 60.0 + index * 1.5 - (index % 2) * 2,
                 "top5": 95.0, "val_loss": 1.0 - index * 0.02 + (index % 2) * 0.03}
        if index == 0:
            attrs["baseline"] = "paper"
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        for epoch in (1, 2, 3):
            trial.report(attrs["val_loss"] + (3 - epoch) * 0.2, step=epoch)
        study.tell(trial, attrs["val_loss"])  # the study's objective: validation loss
    for seed in (1, 2, 3):  # a race of trial 1 against the paper's ramp (trial 0)
        for source, base_loss in ((0, 0.95), (1, 0.93)):
            loss = base_loss + seed * 0.01 + (0.002 * seed if source else 0.0)
            trial = study.ask()
            for key, value in {"role": "reeval", "source_trial": source, "seed": seed,
                               "reeval_epochs": 6, "status": "completed", "val_loss": loss,
                               "top1": 70 - 10 * loss,
                               "source_role": "baseline:paper" if source == 0 else "candidate",
                               }.items():
                trial.set_user_attr(key, value)
            study.tell(trial, loss)
    study.set_user_attr("race", {"trials": [1, 0], "seeds": [1, 2, 3], "epochs": 6,
                                 "max_trainings": None})
    return location, study


class PlotCounter(HTMLParser):
    """Counts plot containers and the SVG roots plotly drew inside them."""

    def __init__(self) -> None:
        super().__init__()
        self.plots: list[str] = []
        self.drawn: set[str] = set()
        self.stack: list[str | None] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        plot_id = attrs.get("id") if re.fullmatch(r"plot-\d+", attrs.get("id") or "") else None
        if plot_id:
            self.plots.append(plot_id)
        current = plot_id or (self.stack[-1] if self.stack else None)
        if tag == "svg" and "main-svg" in (attrs.get("class") or "") and current:
            self.drawn.add(current)
        if tag not in ("meta", "br", "img", "input", "link", "path", "rect", "line"):
            self.stack.append(current)

    def handle_endtag(self, tag):
        if self.stack and tag not in ("meta", "br", "img", "input", "link", "path", "rect",
                                      "line"):
            self.stack.pop()


def test_report_holds_every_plot(tmp_path):
    location, study = make_study(tmp_path)
    from rampsearch.ranking.leaderboard import leaderboard
    from rampsearch.ranking.race_results import stored_race

    frame = leaderboard(study, SMALL.depths)
    race = stored_race(study, frame)
    assert race is not None and list(race.table["verdict"]) == ["better"]
    page, count = build_report(study, frame, SMALL.depths, 4_800_000_000, race)
    # objective vs FLOPs, ramp curves, history, learning curves, importances, race rounds
    assert count == 6
    assert page.count('id="plot-') == count
    assert "paper ramp" in page and "Leaderboard" in page
    assert "Race against the paper" in page and "better than the paper" in page
    assert "objective: val_loss" in page


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is installed by `make setup`")
def test_report_renders_in_headless_chromium(tmp_path):
    location, _ = make_study(tmp_path)
    path = write_report(location)
    assert "cdn.plot.ly" not in path.read_text()[:2000]  # plotly.js is inline: opens offline
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'chromium'}",
         "--virtual-time-budget=15000", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=180).stdout
    counter = PlotCounter()
    counter.feed(dom)
    assert len(counter.plots) == 6
    assert counter.drawn == set(counter.plots), f"not drawn: {set(counter.plots) - counter.drawn}"
    assert dom.count('class="trace') + dom.count("class='trace") >= 6


def test_plots_have_their_data(tmp_path):
    _, study = make_study(tmp_path)
    from rampsearch.ranking.leaderboard import leaderboard
    from rampsearch.reporting.report import ramp_curves, score_vs_flops
    from rampsearch.study.objective import OBJECTIVES

    frame = leaderboard(study, SMALL.depths)
    scatter = score_vs_flops(frame, 4.8, OBJECTIVES["val_loss"])
    assert len(scatter.data[0].x) == 5 and len(scatter.data[1].x) == 1  # 5 searched, 1 paper
    assert sorted(scatter.data[0].y) == sorted(frame[frame["role"] == "candidate"]["val_loss"])
    curves = ramp_curves(frame, SMALL.depths, OBJECTIVES["val_loss"])
    assert curves.data[-1].name == "paper ramp"
    assert list(curves.data[-1].y) == pytest.approx(SMALL.high_ratios(), abs=1e-4)
    assert study.get_trials(states=(TrialState.COMPLETE,))


def test_interval_bars_reach_each_end_and_skip_unknown_intervals():
    mean = pd.Series([0.5, -1.0, 2.0])
    bars = interval_bars(mean, pd.Series([0.25, -1.5, float("nan")]),
                         pd.Series([1.0, 0.0, float("nan")]))
    assert bars["symmetric"] is False
    assert list(mean + bars["array"]) == [1.0, 0.0, 2.0]
    assert list(mean - bars["arrayminus"]) == [0.25, -1.5, 2.0]  # unknown: no bar


def test_a_fidelity_study_with_only_the_reference_has_no_scatter_yet():
    """The reference trains first: until a proxy has results there is nothing to plot
    against it, and the report is written without that figure (no KeyError)."""
    from rampsearch.reporting.report import fidelity_scatter

    table = pd.DataFrame({"label": ["paper", "sampled_1"], "ramp": ["a", "b"],
                          "reference_mean": [1.2, 1.1], "reference_std": [0.01, 0.02]})
    assert fidelity_scatter(table, pd.DataFrame({"scorer": []}), "val_loss") is None
    both = table.assign(proxy_mean=[1.5, 1.4], proxy_std=[0.02, 0.01])
    assert fidelity_scatter(both, pd.DataFrame({"scorer": []}), "val_loss") is not None
