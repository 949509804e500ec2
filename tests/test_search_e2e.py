"""End to end through the CLI: real Ray, real SQLite storage, real training on synthetic images.

One small study is searched once per module (on a local Ray the command starts, as `make run`
does) and then inspected, resumed, ranked, reported and served by the dashboard. A second
study is killed with SIGKILL mid-run and resumed. The other runs reach the session's Ray
cluster through RAY_ADDRESS, as a user's existing cluster.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pandas as pd
import pytest
from cli_runs import environment, load, rampsearch
from optuna.trial import TrialState

from rampsearch.study import storage as study_lib

pytestmark = pytest.mark.slow

BUDGET = 4_800_000_000
BASELINES = {"paper", "equal_split", "reverse_ramp", "all_attention_but_one",
             "one_attention_head"}
# Validation on 2,000 images keeps each trial running long enough to be killed in the middle.
KILLABLE_PROXY = ["--data", "synthetic", "--epochs", "2", "--train-samples", "128",
                  "--batch-size", "64", "--width", "0.125"]
TINY_PROXY = [*KILLABLE_PROXY, "--val-samples", "64"]


def ended(study: optuna.Study, role: str) -> list:
    return study_lib.ended_trials(study, role)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    done = rampsearch("run", "--budget", "4.8GFLOPs", "--trials", "3", "--results",
                      str(results), "--study", "e2e", "--reeval-top", "1", "--max-seeds", "3",
                      *TINY_PROXY)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return results, done.stdout


def test_run_prints_plan_progress_and_table(searched):
    _, out = searched
    for text in ("base       iformer_small", "space      monotone", "budget     4.800 GFLOPs",
                 "3 candidates + 5 baselines", "[  8/8]", "top-1 %", "study storage"):
        assert text in out, text


def test_every_baseline_and_candidate_trained_once(searched):
    results, _ = searched
    study = load(results, "e2e")
    assert sorted(t.user_attrs["baseline"] for t in ended(study, "baseline")) == sorted(BASELINES)
    assert len(ended(study, "candidate")) == 3
    for trial in ended(study, "candidate") + ended(study, "baseline"):
        attrs = trial.user_attrs
        for key in ("ramp", "high_ratios", "flops", "params", "proxy", "epochs_reached",
                    "wall_s", "end_reason", "status"):
            assert key in attrs, key
        assert attrs["status"] == "completed" and trial.state == TrialState.COMPLETE
        assert attrs["epochs_reached"] == 2
        assert sorted(trial.intermediate_values) == [1, 2]  # live learning curve


def test_no_trial_over_budget_is_trained(searched):
    results, _ = searched
    study = load(results, "e2e")
    for trial in study.get_trials():
        role = trial.user_attrs.get("role")
        if role == "candidate":
            assert trial.user_attrs["flops"] <= BUDGET
        if role == "rejected":  # told back to the sampler, never trained
            assert trial.state == TrialState.PRUNED and "status" not in trial.user_attrs
    paper = [t for t in ended(study, "baseline") if t.user_attrs["baseline"] == "paper"][0]
    assert paper.user_attrs["flops"] > BUDGET and paper.user_attrs["within_budget"] is False


def test_rank_and_report(searched):
    results, _ = searched
    done = rampsearch("rank", "--results", str(results), "--study", "e2e")
    assert done.returncode == 0, done.stderr
    import pandas as pd

    frame = pd.read_parquet(results / "e2e" / "leaderboard.parquet")
    assert len(frame) == 8 and set(frame["status"]) == {"completed"}
    assert list(frame["rank"]) == list(range(1, 9))
    done = rampsearch("report", "--results", str(results), "--study", "e2e")
    assert done.returncode == 0, done.stderr
    assert (results / "e2e" / "report.html").stat().st_size > 100_000


def test_same_study_without_resume_is_refused(searched):
    results, _ = searched
    done = rampsearch("run", "--budget", "4.8GFLOPs", "--results", str(results), "--study",
                      "e2e", *TINY_PROXY)
    assert done.returncode == 2
    assert "already exists. Add --resume" in done.stderr and "Traceback" not in done.stderr


def test_resume_continues_to_more_trials(searched):
    results, _ = searched
    before = {t.number: t.value for t in load(results, "e2e").get_trials()
              if t.state == TrialState.COMPLETE}
    done = rampsearch("run", "--resume", "--study", "e2e", "--results", str(results),
                      "--trials", "4", "--reeval-top", "0")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    study = load(results, "e2e")
    assert len(ended(study, "candidate")) == 4
    assert len(ended(study, "baseline")) == 5  # not trained again
    after = {t.number: t.value for t in study.get_trials() if t.state == TrialState.COMPLETE}
    assert all(after[n] == v for n, v in before.items())


def test_dashboard_serves_the_study(searched):
    results, _ = searched
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "rampsearch", "dashboard", "--results",
                               str(results), "--study", "e2e", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environment())
    try:
        names = _poll_studies(port)
        assert "e2e" in names
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/dashboard", timeout=30) as page:
            assert b"<html" in page.read().lower()
    finally:
        server.terminate()  # SIGTERM, as a service manager stops it: a clean exit
        code = server.wait(timeout=60)
    output = server.stdout.read().decode()
    assert code == 0 and "dashboard stopped" in output and "Traceback" not in output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _poll_studies(port: int, timeout: float = 60.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as r:
                return [s["study_name"] for s in json.load(r)["study_summaries"]]
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_resume_after_sigkill_loses_and_repeats_nothing(tmp_path):
    args = [sys.executable, "-m", "rampsearch", "run", "--budget", "4.8GFLOPs", "--trials", "3",
            "--results", str(tmp_path), "--study", "killed", *KILLABLE_PROXY]
    driver = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=environment(), start_new_session=True)
    database = tmp_path / "killed" / "study.db"
    try:
        _wait_for_completed(database, count=2, process=driver)
    finally:
        os.kill(driver.pid, signal.SIGKILL)  # the driver only; Ray's workers notice
        driver.wait(timeout=60)
    study = load(tmp_path, "killed")
    finished = {t.number: (t.value, t.user_attrs.get("baseline"))
                for t in study.get_trials() if t.state == TrialState.COMPLETE}
    running = [t.number for t in study.get_trials() if t.state == TrialState.RUNNING]
    assert len(finished) >= 2

    done = rampsearch("run", "--resume", "--study", "killed", "--results", str(tmp_path),
                      "--reeval-top", "0")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    study = load(tmp_path, "killed")
    trials = study.get_trials()
    for number, (value, _) in finished.items():  # nothing lost, nothing re-run
        assert trials[number].state == TrialState.COMPLETE and trials[number].value == value
    for number in running:
        assert trials[number].user_attrs["end_reason"] == "interrupted"
    names = [t.user_attrs["baseline"] for t in ended(study, "baseline")]
    assert sorted(names) == sorted(BASELINES)  # each exactly once
    assert len(ended(study, "candidate")) == 3
    assert not [t for t in trials if t.state == TrialState.RUNNING]


def _wait_for_completed(database: Path, count: int, process: subprocess.Popen,
                        timeout: float = 400.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the search ended before it could be killed"
        if database.exists():
            try:
                with sqlite3.connect(database, timeout=30) as connection:
                    (done,) = connection.execute(
                        "SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()
                if done >= count:
                    return
            except sqlite3.OperationalError:
                pass  # tables not created yet
        time.sleep(0.5)
    raise AssertionError("no trial completed in time")


def test_diverging_trials_are_recorded_and_the_study_finishes(tmp_path, ray_cluster):
    done = rampsearch("run", "--budget", "4.8GFLOPs", "--trials", "1", "--results",
                      str(tmp_path), "--study", "nan", "--lr", "1e12", "--data", "synthetic",
                      "--epochs", "1", "--train-samples", "64", "--batch-size", "32",
                      "--val-samples", "64", "--width", "0.125", ray_address=ray_cluster)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    study = load(tmp_path, "nan")
    trained = ended(study, "candidate") + ended(study, "baseline")
    assert len(trained) == 6
    for trial in trained:
        assert trial.state == TrialState.FAIL
        assert trial.user_attrs["status"] == "diverged"
        assert trial.user_attrs["end_reason"]
    assert "failed 6" in done.stdout
    assert "race       not run:" in done.stdout  # nothing to race: said, not a crash


def test_run_ends_with_a_race_and_its_verdict(searched):
    results, out = searched
    assert "race       top 1 candidate(s) and the paper's ramp" in out
    assert "verdict    the best searched ramp, trial" in out
    assert any(word in out for word in ("better than the paper's ramp",
                                        "worse than the paper's ramp",
                                        "equivalent to the paper's ramp",
                                        "not separated from the paper's"))
    study = load(results, "e2e")
    runs = ended(study, "reeval")
    assert len(runs) == 6  # the leader and the paper's ramp, three fresh seeds each
    assert {t.user_attrs["seed"] for t in runs} == {1, 2, 3}  # never the search's seed 0
    assert all(not t.params for t in runs)  # another measurement: kept from the sampler
    assert all("val_loss" in t.user_attrs and "top1" in t.user_attrs for t in runs)
    table = pd.read_csv(results / "e2e" / "reeval.csv")
    assert list(table.columns[:8]) == ["trial", "ramp", "seeds", "mean", "diff_vs_paper",
                                       "diff_low", "diff_high", "verdict"]
    assert set(table["verdict"]) <= {"better", "worse", "equivalent", "not separated"}
    assert len(table) == 1
    assert "Race against the paper" in (results / "e2e" / "report.html").read_text()


def test_rank_replays_the_stored_race_and_refuses_another_design(searched):
    results, _ = searched
    before = {(t.user_attrs["source_trial"], t.user_attrs["seed"]): t.user_attrs["val_loss"]
              for t in ended(load(results, "e2e"), "reeval")}
    verdict_before = pd.read_csv(results / "e2e" / "reeval.csv")["verdict"].tolist()
    # More leaders or more seeds on the same seeds would be another look: refused, nothing
    # trained, in one paragraph naming the stored design.
    for other in (["--reeval-top", "2", "--max-seeds", "3"],
                  ["--reeval-top", "1", "--max-seeds", "6"]):
        refused = rampsearch("rank", "--results", str(results), "--study", "e2e", *other)
        assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr[-2000:]
        assert "already holds a race" in refused.stderr and "Traceback" not in refused.stderr
        assert "--reeval-top 1 --max-seeds 3" in refused.stderr
    assert len(ended(load(results, "e2e"), "reeval")) == len(before)
    # The same design replays the race: nothing trained again, the same verdict.
    again = rampsearch("rank", "--results", str(results), "--study", "e2e", "--reeval-top", "1",
                       "--max-seeds", "3")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "vs paper (95% interval)" in again.stdout and "verdict" in again.stdout
    after = {(t.user_attrs["source_trial"], t.user_attrs["seed"]): t.user_attrs["val_loss"]
             for t in ended(load(results, "e2e"), "reeval")}
    assert after == before
    assert pd.read_csv(results / "e2e" / "reeval.csv")["verdict"].tolist() == verdict_before
    rounds = pd.read_csv(results / "e2e" / "race_rounds.csv")
    assert set(rounds["seeds"]) == {3}


def test_objective_chooses_what_the_sampler_and_leaderboard_use(searched, tmp_path,
                                                                 ray_cluster):
    from rampsearch.ranking.leaderboard import leaderboard

    results, _ = searched
    by_loss = load(results, "e2e")
    assert by_loss.direction == optuna.study.StudyDirection.MINIMIZE
    assert by_loss.metric_names == ["val_loss"]
    for trial in by_loss.get_trials(states=(TrialState.COMPLETE,)):
        if trial.user_attrs.get("role") in ("candidate", "baseline"):
            assert trial.values[0] == pytest.approx(trial.user_attrs["val_loss"])
    frame = leaderboard(by_loss, [3, 3, 9, 3])
    done = frame[frame["status"] == "completed"]
    assert list(done["val_loss"]) == sorted(done["val_loss"])
    run = rampsearch("run", "--budget", "4.8GFLOPs", "--trials", "1", "--objective", "top1",
                     "--reeval-top", "0", "--results", str(tmp_path), "--study", "top1",
                     *TINY_PROXY, ray_address=ray_cluster)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    by_top1 = load(tmp_path, "top1")
    assert by_top1.direction == optuna.study.StudyDirection.MAXIMIZE
    assert by_top1.metric_names == ["top1"]
    for trial in by_top1.get_trials(states=(TrialState.COMPLETE,)):
        assert trial.values[0] == pytest.approx(trial.user_attrs["top1"])
    frame = leaderboard(by_top1, [3, 3, 9, 3])
    done = frame[frame["status"] == "completed"]
    assert list(done["top1"]) == sorted(done["top1"], reverse=True)
    assert "top-1 %*" in run.stdout and "ranked by top1" in run.stdout


def test_asha_stops_weak_trials_which_never_rank_above_full_ones(tmp_path, ray_cluster):
    done = rampsearch("run", "--budget", "4.8GFLOPs", "--trials", "2", "--scheduler", "asha",
                      "--reeval-top", "0",
                      "--results", str(tmp_path), "--study", "asha", "--data", "synthetic",
                      "--epochs", "4", "--train-samples", "128", "--batch-size", "64",
                      "--val-samples", "64", "--width", "0.125", ray_address=ray_cluster)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"Ray at {ray_cluster}" in done.stdout  # an existing cluster, not a local Ray
    study = load(tmp_path, "asha")
    trained = ended(study, "candidate") + ended(study, "baseline")
    full = [t for t in trained if t.user_attrs["epochs_reached"] == 4]
    stopped = [t for t in trained if t.user_attrs["epochs_reached"] < 4]
    assert full and stopped  # ASHA let some run to the end and stopped others at a rung
    assert all(t.state == TrialState.COMPLETE for t in full)
    assert all(t.state == TrialState.PRUNED and t.user_attrs["status"] == "stopped"
               for t in stopped)
    from rampsearch.ranking.leaderboard import leaderboard

    frame = leaderboard(study, [3, 3, 9, 3])
    statuses = list(frame["status"])
    assert statuses == sorted(statuses, key=lambda s: s != "completed")
