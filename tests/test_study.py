"""The study layer, the leaderboard and re-evaluation statistics on real Optuna storages."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import iformer
from rampsearch.attributes import Attr, StudyAttr
from rampsearch.errors import UserError
from rampsearch.ranking.leaderboard import compact_ramp, leaderboard, pareto_mask
from rampsearch.ranking.race import RaceRules
from rampsearch.ranking.race_results import (
    check_race_design,
    leaders,
    race_design,
    race_result,
    store_race,
    stored_race,
    verdict_paragraph,
)
from rampsearch.reporting.progress import Progress, format_duration
from rampsearch.study import storage as study_lib
from rampsearch.study.objective import OBJECTIVES
from rampsearch.study.trials import tell_outcome
from search_spaces import Budget

SMALL = iformer.preset("small")
PAPER = SMALL.attention_heads


def settings(**changes) -> study_lib.StudySettings:
    values = dict(base="iformer_small", space="monotone", budget=Budget(4_800_000_000),
                  data="synthetic", proxy={"epochs": 2},
                  sampler="tpe", seed=0, scheduler="none")
    values.update(changes)
    return study_lib.StudySettings(**values)


def location(tmp_path: Path, name: str = "s1") -> study_lib.StudyLocation:
    return study_lib.StudyLocation(name, study_lib.default_storage_url(tmp_path / name), tmp_path)


def add_trial(study: optuna.Study, ramp, role="candidate", status="completed", top1=50.0,
              epochs=2, baseline=None, state=None):
    trial = study.ask()
    config = SMALL.with_ramp(ramp)
    flops = iformer.count_flops(config)
    for key, value in {"role": role, "ramp": list(ramp), "flops": flops,
                       "params": iformer.count_params(config),
                       "high_ratios": config.high_ratios(), "within_budget": flops <= 4.8e9,
                       "status": status, "epochs_reached": epochs, "end_reason": status}.items():
        trial.set_user_attr(key, value)
    if baseline:
        trial.set_user_attr("baseline", baseline)
    if top1 is not None:
        trial.set_user_attr("top1", top1)
    if state is None:
        state = TrialState.COMPLETE if status == "completed" else TrialState.PRUNED
    study.tell(trial, [top1] if state == TrialState.COMPLETE else None, state=state)
    return trial.number


def test_attribute_keys_are_the_stored_words(tmp_path):
    """Trials written with bare keys (older studies) read through Attr, and keys written
    through Attr read back as plain strings."""
    storage = f"sqlite:///{tmp_path / 'keys.db'}"
    study = optuna.create_study(study_name="keys", storage=storage)
    trial = study.ask()
    trial.set_user_attr("top1", 70.0)
    trial.set_user_attr(Attr.VAL_LOSS, 1.5)
    study.set_user_attr(StudyAttr.RACE, {"epochs": 1})
    study.tell(trial, 1.5)
    again = optuna.load_study(study_name="keys", storage=storage)
    attrs = again.trials[0].user_attrs
    assert attrs[Attr.TOP1] == 70.0 and attrs["val_loss"] == 1.5
    assert again.user_attrs["race"] == {"epochs": 1}
    assert all(type(key) is str for key in (*attrs, *again.user_attrs))


def test_create_then_resume_and_mismatch(tmp_path):
    loc = location(tmp_path)
    sampler = optuna.samplers.RandomSampler(seed=0)
    study = study_lib.create_or_check_study(loc, settings(), sampler, resume=False)
    assert study.user_attrs["rampsearch"]["budget_flops"] == 4_800_000_000
    with pytest.raises(UserError, match="already exists. Add --resume"):
        study_lib.create_or_check_study(loc, settings(), sampler, resume=False)
    again = study_lib.create_or_check_study(loc, settings(), sampler, resume=True)
    assert again.study_name == "s1"
    with pytest.raises(UserError, match="other settings.*budget_flops"):
        study_lib.create_or_check_study(loc, settings(budget=Budget(4_700_000_000)), sampler,
                                        resume=True)
    with pytest.raises(UserError, match="no study 'other'"):
        study_lib.create_or_check_study(location(tmp_path, "other"), settings(), sampler,
                                        resume=True)


def test_a_study_that_cannot_start_is_refused_before_anything_is_created(tmp_path):
    loc = location(tmp_path, "fresh")
    study_lib.check_study_can_start(loc, settings(), resume=False)  # may start
    with pytest.raises(UserError, match="no study 'fresh'"):
        study_lib.check_study_can_start(loc, settings(), resume=True)
    assert not list(tmp_path.iterdir())  # no storage file, no folder
    study_lib.create_or_check_study(loc, settings(), optuna.samplers.RandomSampler(), False)
    study_lib.check_study_can_start(loc, settings(), resume=True)
    with pytest.raises(UserError, match="already exists. Add --resume"):
        study_lib.check_study_can_start(loc, settings(), resume=False)
    with pytest.raises(UserError, match="other settings.*seed"):
        study_lib.check_study_can_start(loc, settings(seed=5), resume=True)


def test_run_file_and_find_latest(tmp_path):
    for name in ("first", "second"):
        loc = location(tmp_path, name)
        study_lib.write_run_file(loc, settings(), trials=7)
    found = study_lib.find_study(tmp_path, None)
    assert found.name == "second"
    assert study_lib.find_study(tmp_path, "first").storage_url.endswith("first/study.db")
    with pytest.raises(UserError, match="no study 'third'.*known: first, second"):
        study_lib.find_study(tmp_path, "third")
    with pytest.raises(UserError, match="no study under"):
        study_lib.find_study(tmp_path / "empty", None)


def test_a_moved_study_folder_still_finds_its_own_storage(tmp_path):
    """The default storage is written as the study.db beside run.json, not as an absolute
    path: a study folder copied elsewhere opens its own copy; another storage stays named."""
    loc = location(tmp_path / "here", "moved")
    study = study_lib.create_or_check_study(loc, settings(), optuna.samplers.RandomSampler(),
                                            resume=False)
    add_trial(study, PAPER, top1=61.0)
    study_lib.write_run_file(loc, settings(), trials=1)
    (tmp_path / "here").rename(tmp_path / "there")
    found = study_lib.find_study(tmp_path / "there", "moved")
    assert found.storage_url == study_lib.default_storage_url(tmp_path / "there" / "moved")
    assert study_lib.load_study(found).trials[0].user_attrs["top1"] == 61.0
    elsewhere = study_lib.StudyLocation("kept", f"sqlite:///{tmp_path / 'shared.db'}", tmp_path)
    study_lib.write_run_file(elsewhere, settings(), trials=1)
    assert study_lib.find_study(tmp_path, "kept").storage_url == elsewhere.storage_url


def test_bad_study_name_and_storage():
    with pytest.raises(UserError, match="not usable as a folder name"):
        study_lib.check_study_name("../escape")
    with pytest.raises(UserError, match="cannot open the study storage"):
        study_lib.open_storage("nosuchdb://user@host/db")


def test_journal_storage_path(tmp_path):
    storage = study_lib.open_storage(str(tmp_path / "journal.log"))
    study = optuna.create_study(storage=storage, study_name="j")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(optuna.load_study(study_name="j", storage=study_lib.open_storage(
        str(tmp_path / "journal.log"))).trials) == 2


def test_recover_interrupted_requeues_candidates(tmp_path):
    study = study_lib.create_or_check_study(location(tmp_path), settings(),
                                            optuna.samplers.RandomSampler(seed=0), resume=False)
    finished = add_trial(study, PAPER, top1=60.0)
    running = study.ask()
    running.suggest_int("b00_s1", 0, 3)
    running.set_user_attr("role", "candidate")
    recovered = study_lib.recover_interrupted(study)
    assert recovered == [running.number]
    trials = study.get_trials()
    assert trials[finished].state == TrialState.COMPLETE and trials[finished].value == 60.0
    assert trials[running.number].state == TrialState.FAIL
    assert trials[running.number].user_attrs["end_reason"] == "interrupted"
    waiting = study.get_trials(states=(TrialState.WAITING,))
    # An enqueued trial holds its parameters as fixed_params until it is asked again.
    assert [t.system_attrs["fixed_params"] for t in waiting] == [trials[running.number].params]
    assert study_lib.recover_interrupted(study) == []  # nothing left running


def test_leaderboard_never_ranks_stopped_above_completed(tmp_path):
    study = optuna.create_study(direction="maximize")
    low = [1] * 3 + [3] * 3 + [5] * 9 + [6] * 3
    add_trial(study, PAPER, role="baseline", baseline="paper", top1=40.0)
    add_trial(study, low, top1=45.0)
    add_trial(study, [1] * 3 + [2] * 3 + [5] * 9 + [6] * 3, status="stopped", top1=90.0, epochs=1)
    add_trial(study, [0] * 3 + [2] * 3 + [5] * 9 + [6] * 3, status="failed", top1=None,
              state=TrialState.FAIL)
    rejected = study.ask()
    rejected.set_user_attr("role", "rejected")
    study.tell(rejected, state=TrialState.PRUNED)
    frame = leaderboard(study, SMALL.depths, OBJECTIVES["top1"])
    assert list(frame["status"]) == ["completed", "completed", "stopped", "failed"]
    assert list(frame["top1"][:2]) == [45.0, 40.0]
    assert frame.loc[0, "vs_paper"] == pytest.approx(5.0)
    assert len(frame) == 4  # the rejected proposal was never trained, so it is no row
    assert not frame.loc[frame["status"] == "stopped", "pareto"].any()


def test_pareto_mask_on_accuracy_and_flops():
    import pandas as pd

    frame = pd.DataFrame({"status": ["completed"] * 3, "top1": [50.0, 60.0, 55.0],
                          "gflops": [4.0, 4.5, 4.6]})
    assert list(pareto_mask(frame, OBJECTIVES["top1"])) == [True, True, False]
    # By a loss (lower is better) the same numbers give the other front.
    frame["val_loss"] = frame["top1"] / 100
    assert list(pareto_mask(frame, OBJECTIVES["val_loss"])) == [True, False, False]


def test_compact_ramp():
    assert compact_ramp(PAPER, SMALL.depths) == "1x3 | 3x3 | 7x4 9x5 | 11x3"
    assert compact_ramp([0, 1, 1, 2, 2, 2, 3, 3, 3], [3, 3, 3]) == "0 1x2 | 2x3 | 3x3"


def test_tell_outcome_states(tmp_path):
    study = optuna.create_study(direction="maximize")
    cases = [
        ({"final": True, "status": "completed", "top1": 70.0, "epoch": 2}, False,
         TrialState.COMPLETE),
        ({"final": True, "status": "diverged", "reason": "loss is nan", "epoch": 1}, False,
         TrialState.FAIL),
        ({"final": False, "top1": 30.0, "epoch": 1}, False, TrialState.PRUNED),
        (None, True, TrialState.FAIL),
    ]
    for result, error, expected in cases:
        trial = study.ask()
        trial.set_user_attr("flops", 1)
        attrs = tell_outcome(study, trial, result, error, "top1")
        frozen = study.get_trials()[-1]
        assert frozen.state == expected
        assert frozen.user_attrs["end_reason"] == attrs["end_reason"]
    assert study.get_trials()[1].user_attrs["end_reason"] == "loss is nan"
    assert "scheduler" in study.get_trials()[2].user_attrs["end_reason"]


def test_race_result_pairs_seeds_and_gives_verdicts(tmp_path):
    """Leaders raced against the paper's ramp on a real storage: a leader that is better on
    every seed by about 0.05 loss is 'better' although a shared seed effect of +-0.3 makes
    the unpaired spread large; one within the noise is "not separated"; both scores are shown."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="minimize")
    paper = add_trial(study, PAPER, role="baseline", baseline="paper", top1=40.0)
    good = add_trial(study, [1] * 3 + [3] * 3 + [5] * 9 + [6] * 3, top1=44.0)
    close = add_trial(study, [1] * 3 + [3] * 3 + [4] * 9 + [6] * 3, top1=43.0)
    seed_effect = {1: 0.3, 2: -0.3, 3: 0.0, 4: 0.2}
    offsets = {paper: 0.0, good: -0.05, close: 0.0}
    wobble = {1: 0.01, 2: -0.01, 3: 0.02, 4: -0.02}
    for source, offset in offsets.items():
        for seed, effect in seed_effect.items():
            loss = 1.0 + effect + offset + (wobble[seed] if source == close else
                                            wobble[seed] / 10 if source == good else 0.0)
            trial = study.ask()
            for key, attr in {"role": "reeval", "source_trial": source, "seed": seed,
                              "reeval_epochs": 2, "status": "completed", "val_loss": loss,
                              "top1": 80.0 - 10 * loss, "source_role": "candidate"}.items():
                trial.set_user_attr(key, attr)
            study.tell(trial, loss)
    frame = leaderboard(study, SMALL.depths, OBJECTIVES["val_loss"])
    frame["val_loss"] = frame["val_loss"].fillna(1.0)
    chosen = frame[frame["trial"].isin([paper, good, close])]
    result = race_result(study, chosen, RaceRules((1, 2, 3, 4)), 2, OBJECTIVES["val_loss"])
    rows = result.table.set_index("trial")
    assert rows.loc[good, "verdict"] == "better"
    assert rows.loc[good, "diff_vs_paper"] == pytest.approx(-0.05, abs=1e-3)
    assert rows.loc[good, "diff_high"] < 0 and rows.loc[good, "seeds"] == 4
    assert rows.loc[close, "verdict"] == "not separated"
    assert rows.loc[close, "diff_low"] < 0 < rows.loc[close, "diff_high"]
    assert rows.loc[good, "mean_top1"] == pytest.approx(70.0)
    # Round 1 (3 seeds) separates 'close' from the best at 95% but not at the stricter level
    # of an early look; round 2, the last, tests at 95% and drops it.
    assert result.state.dropped == {close: 2}
    assert result.state.best == good and result.state.finished
    assert rows.loc[close, "standing"] == "dropped in round 2"
    looser = race_result(study, chosen, RaceRules((1, 2, 3, 4), interim_level=0.95), 2,
                         OBJECTIVES["val_loss"])
    assert looser.state.dropped == {close: 1}
    # 'close' alone against the paper's ramp: not separated, and the verdict sizes a new race
    # on fresh seeds at the smallest effect worth finding instead of extending this one.
    alone = race_result(study, frame[frame["trial"].isin([paper, close])],
                        RaceRules((1, 2, 3, 4), margin=0.001), 2, OBJECTIVES["val_loss"], 0.01)
    text = " ".join(verdict_paragraph(alone).split())
    assert "not separated from the paper's ramp" in text and "tied" not in text
    assert "A new race on fresh seeds would need about" in text and "80% power" in text
    assert "0.0100 (--min-effect)" in text and "validation images that chose" in text


def test_a_stored_race_is_continued_only_with_its_own_design(tmp_path):
    """A race's design is stored before it trains; the same study raced again with other
    settings (more leaders, fewer or more seeds, another margin) is refused in one
    paragraph that names the stored settings; the same settings replay it."""
    study = optuna.create_study(direction="minimize")
    study.set_user_attr(StudyAttr.SETTINGS,
                        settings(objective=OBJECTIVES["val_loss"]).to_dict())
    paper = add_trial(study, PAPER, role="baseline", baseline="paper", top1=40.0)
    for top1, heads in ((44.0, 5), (43.0, 6)):
        add_trial(study, [1] * 3 + [3] * 3 + [heads] * 9 + [6] * 3, top1=top1)
    frame = leaderboard(study, SMALL.depths, OBJECTIVES["val_loss"])
    objective = OBJECTIVES["val_loss"]

    def design(top: int, seeds: int, margin: float | None = None) -> dict:
        chosen = leaders(frame, top)
        rules = RaceRules(tuple(range(1, seeds + 1)), comparisons=len(chosen) - 1,
                          margin=margin or 0.01)
        return race_design(chosen, rules, 2, objective, top, seeds, margin)

    stored = design(1, 6)
    store_race(study, stored)
    check_race_design(study.user_attrs[StudyAttr.RACE], design(1, 6), "s")  # a replay
    for other in (design(2, 6), design(1, 4), design(1, 8), design(1, 6, margin=0.02)):
        with pytest.raises(UserError) as refused:
            check_race_design(study.user_attrs[StudyAttr.RACE], other, "s")
        message = str(refused.value)
        assert "\n" not in message and "already holds a race" in message
        assert "--reeval-top 1 --max-seeds 6" in message and "fewer seeds" in message
    # The stored design is what a replay judges by: its seeds, margin and K.
    frame.loc[frame["trial"] == paper, "val_loss"] = 1.0
    replayed = stored_race(study, frame)
    assert replayed is not None and replayed.rules.seeds == tuple(range(1, 7))
    assert replayed.rules.margin == 0.01 and replayed.rules.comparisons == 1


def test_leaders_take_top_candidates_within_budget_and_the_paper(tmp_path):
    study = optuna.create_study(direction="maximize")
    add_trial(study, PAPER, role="baseline", baseline="paper", top1=40.0)
    for top1, heads in ((44.0, 5), (43.0, 6), (42.0, 4)):
        add_trial(study, [1] * 3 + [3] * 3 + [heads] * 9 + [6] * 3, top1=top1)
    chosen = leaders(leaderboard(study, SMALL.depths, OBJECTIVES["top1"]), top_k=2)
    assert list(chosen["top1"]) == [44.0, 43.0, 40.0]


def test_progress_estimates_time_left():
    class Job:
        def __init__(self, number):
            self.number, self.role, self.label, self.ramp = number, "candidate", f"#{number}", PAPER

    import io

    stream = io.StringIO()
    progress = Progress(total_jobs=4, concurrency=2, depths=SMALL.depths, epochs=2,
                        objective=OBJECTIVES["top1"], stream=stream)
    assert progress.time_left() is None
    progress("start", Job(0), {})
    progress("end", Job(0), {"status": "completed", "top1": 55.0, "epochs_reached": 2})
    assert progress.best[0] == 55.0 and progress.done == 1
    assert progress.time_left() is not None
    progress("start", Job(1), {})
    progress("end", Job(1), {"status": "diverged", "end_reason": "nan", "epochs_reached": 1})
    assert progress.failed == 1
    text = stream.getvalue()
    assert "[  1/4] #0" in text and "best 55.00%" in text and "(nan)" in text
    assert format_duration(3725) == "1h02m" and format_duration(65) == "1m05s"
