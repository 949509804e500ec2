"""The one-shot strategy end to end through the CLI: real Ray, real SQLite storage, a real
supernet trained on synthetic images, its subnets scored as the study's sampler proposes
them, the finalists raced stand-alone; resumed with more trials; read by `rank` and
`export`; and a supernet measured as a scorer by `rampsearch fidelity`."""

from __future__ import annotations

import pandas as pd
import pytest
from cli_runs import load, rampsearch

from rampsearch.study import storage as study_lib

pytestmark = pytest.mark.slow

PROXY = ["--data", "synthetic", "--epochs", "2", "--train-samples", "128", "--batch-size",
         "64", "--width", "0.125", "--val-samples", "64"]
SUPERNET = ["--strategy", "oneshot", "--supernet", "epochs=2,score_samples=32"]


def ramps_of(trials) -> set[tuple[int, ...]]:
    return {tuple(t.user_attrs["ramp"]) for t in trials}


@pytest.fixture(scope="module")
def searched(tmp_path_factory, ray_cluster):
    results = tmp_path_factory.mktemp("results")
    done = rampsearch("run", "--budget", "4.8GFLOPs", "--trials", "30", "--results",
                      str(results), "--study", "os", "--reeval-top", "1", "--max-seeds", "3",
                      *SUPERNET, *PROXY, ray_address=ray_cluster)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return results, done.stdout


def test_the_supernet_trains_then_scores_every_candidate_by_its_subnet(searched):
    results, out = searched
    for text in ("strategy   oneshot", "supernet   epoch 2/2", "scored     ",
                 "30 candidates + 5 baselines"):
        assert text in out, text
    assert (results / "os" / "supernet.pt").is_file()
    study = load(results, "os")
    candidates = study_lib.ended_trials(study, "candidate")
    baselines = study_lib.ended_trials(study, "baseline")
    assert len(ramps_of(candidates)) == 30 and len(baselines) == 5
    for trial in candidates + baselines:
        attrs = trial.user_attrs
        assert attrs["score_source"] == "supernet" and attrs["score_images"] == 32
        assert attrs["status"] == "completed" and attrs["epochs_reached"] == 2
        assert trial.values == [attrs["val_loss"]]
    # A ramp proposed again is scored once and stored once.
    stored = [tuple(t.user_attrs["ramp"]) for t in candidates + baselines]
    assert len(set(stored)) == len(stored)


def test_the_race_trains_the_finalist_and_the_paper_stand_alone(searched):
    results, out = searched
    study = load(results, "os")
    races = study_lib.ended_trials(study, "reeval")
    assert len(races) >= 6 and all("score_source" not in t.user_attrs for t in races)
    assert (results / "os" / "reeval.csv").is_file() and "verdict" in out


def test_resume_continues_from_the_checkpoint_and_scores_only_new_ramps(searched, ray_cluster):
    results, _ = searched
    before = {t.number: t.values for t in study_lib.ended_trials(load(results, "os"),
                                                                 "candidate")}
    done = rampsearch("run", "--resume", "--results", str(results), "--study", "os",
                      "--trials", "40", "--reeval-top", "0", ray_address=ray_cluster)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "supernet   trained before (2 epochs" in done.stdout
    study = load(results, "os")
    candidates = study_lib.ended_trials(study, "candidate")
    assert len(ramps_of(candidates)) == 40
    assert {t.number: t.values for t in candidates if t.number in before} == before


def test_rank_and_export_read_a_one_shot_study(searched):
    results, _ = searched
    args = ("--results", str(results), "--study", "os")
    ranked = rampsearch("rank", *args, "--top", "3")
    assert ranked.returncode == 0, ranked.stderr
    exported = rampsearch("export", *args)
    assert exported.returncode == 0, exported.stderr
    assert "exported trial" in exported.stdout


def test_an_unreadable_checkpoint_is_one_paragraph_and_keeps_the_study(searched,
                                                                      ray_cluster):
    results, _ = searched
    before = len(load(results, "os").get_trials())
    (results / "os" / "supernet.pt").write_bytes(b"not a checkpoint")
    done = rampsearch("run", "--resume", "--results", str(results), "--study", "os",
                      "--trials", "45", "--reeval-top", "0", ray_address=ray_cluster)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "supernet checkpoint" in done.stderr and "unreadable" in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.startswith("rampsearch: error: ")
    assert len(load(results, "os").get_trials()) == before


def test_fidelity_measures_a_supernet_beside_the_proxies(tmp_path, ray_cluster):
    done = rampsearch("fidelity", "--data", "synthetic", "--samples", "3", "--seeds", "2",
                      "--proxy", "epochs=1,train_samples=128,val_samples=64,batch_size=64,"
                      "width=0.125", "--reference", "epochs=2", "--no-zero-cost",
                      "--supernet", "epochs=1", "--supernet", "epochs=1,score_samples=32",
                      "--results", str(tmp_path), "--study", "fs", ray_address=ray_cluster)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = pd.read_csv(tmp_path / "fs" / "fidelity_summary.csv")
    rows = summary[summary["score"] == "val_loss"].set_index("scorer")
    for name in ("supernet", "supernet2"):
        assert rows.loc[name, "ramps"] == 3 and rows.loc[name, "top10_k"] == 1
        assert pd.notna(rows.loc[name, "proxy_tau"]) and pd.notna(rows.loc[name, "reliability"])
    # Settings that differ only in how they score share one trained supernet per seed.
    assert len(list((tmp_path / "fs" / "supernets").glob("*.pt"))) == 2
    study = load(tmp_path, "fs")
    runs = [t for t in study_lib.ended_trials(study, "fidelity")
            if t.user_attrs["fidelity_setting"] == "supernet2"]
    assert len(runs) == 6 and {t.user_attrs["score_images"] for t in runs} == {32}
