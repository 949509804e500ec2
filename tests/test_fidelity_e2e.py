"""`rampsearch fidelity` end to end: real Ray (an existing cluster, through RAY_ADDRESS), real
SQLite storage, real training on synthetic images (K = 3 ramps, S = 2 seeds, tiny settings),
then the same command again."""

from __future__ import annotations

import pandas as pd
import pytest
from cli_runs import rampsearch

from rampsearch.attributes import Role
from rampsearch.study import storage as study_lib

pytestmark = pytest.mark.slow

TINY = ["--data", "synthetic", "--samples", "3", "--seeds", "2",
        "--proxy", "epochs=1,train_samples=128,val_samples=64,batch_size=64,width=0.125",
        "--reference", "epochs=2"]


def fidelity_trials(results, name):
    study = study_lib.load_study(study_lib.find_study(results, name))
    return study, study_lib.ended_trials(study, Role.FIDELITY)


@pytest.fixture(scope="module")
def measured(tmp_path_factory, ray_cluster):
    results = tmp_path_factory.mktemp("results")
    done = rampsearch("fidelity", *TINY, "--results", str(results), "--study", "fid",
                      ray_address=ray_cluster)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return results, done.stdout


def test_storage_holds_every_ramp_setting_and_seed(measured):
    results, _ = measured
    study, trials = fidelity_trials(results, "fid")
    assert len(trials) == 3 * 2 * 2
    keys = {(t.user_attrs["ramp_label"], t.user_attrs["fidelity_setting"],
             t.user_attrs["seed"])
            for t in trials}
    assert keys == {(label, setting, seed) for label in ("paper", "equal_split", "reverse_ramp")
                    for setting, seeds in (("proxy", (0, 1)), ("reference", (100, 101)))
                    for seed in seeds}
    for trial in trials:
        epochs = 1 if trial.user_attrs["fidelity_setting"] == "proxy" else 2
        assert trial.user_attrs["status"] == "completed"
        assert trial.user_attrs["epochs_reached"] == epochs
        assert trial.user_attrs["proxy"]["epochs"] == epochs
        assert trial.user_attrs["wall_s"] > 0
    zero_cost = study.user_attrs["fidelity"]["zero_cost"]
    assert set(zero_cost) == {"paper", "equal_split", "reverse_ramp"}


def test_tables_are_written_and_printed(measured):
    results, out = measured
    table = pd.read_csv(results / "fid" / "fidelity.csv")
    versus = ["vs_paper", "vs_paper_low", "vs_paper_high", "vs_paper_seeds", "verdict",
              "seeds_to_separate"]
    assert list(table.columns) == [
        "label", "ramp", "gflops", "proxy_mean", "proxy_std", "proxy_seeds", "reference_mean",
        "reference_std", "reference_seeds", *[f"proxy_{c}" for c in versus],
        *[f"reference_{c}" for c in versus], "proxy_rank", "reference_rank", "synflow",
        "naswot", "grad_norm", "mparams", "attention_heads", "score"]
    others = table[table["label"] != "paper"]
    assert set(others["proxy_verdict"]) <= {"better", "worse", "not separated"}
    assert (others["proxy_vs_paper_seeds"] == 2).all()
    assert (others["proxy_vs_paper_low"] <= others["proxy_vs_paper_high"]).all()
    assert len(table) == 6 and set(table["proxy_seeds"]) == {2}  # 3 ramps x 2 scores
    assert sorted(set(table["score"])) == ["top1", "val_loss"]
    loss = table[table["score"] == "val_loss"]
    assert list(loss["reference_mean"]) == sorted(loss["reference_mean"])  # best (lowest) first
    summary = pd.read_csv(results / "fid" / "fidelity_summary.csv")
    for score in ("val_loss", "top1"):
        assert list(summary[summary["score"] == score]["scorer"]) == [
            "proxy", "synflow", "naswot", "grad_norm", "gflops", "mparams", "reference"]
    for column in ("kendall_tau", "spearman_rho", "top_k_overlap", "noise_std", "spread_std",
                   "blocked_noise_std", "blocked_reliability", "reliability_3_seeds",
                   "seeds_for_08", "cpu_min_per_trial", "rho_low", "rho_high",
                   "tau_per_cpu_min"):
        assert column in summary.columns
    reference = summary[(summary["scorer"] == "reference") & (summary["score"] == "val_loss")]
    assert reference["cpu_min_per_trial"].iloc[0] > 0
    assert reference["blocked_seeds"].iloc[0] == 2
    for text in ("against reference", "proxy: 0 of 6 trainings already in the study, 6 to run",
                 "fidelity.csv", "by val_loss (lower is better)", "by top1 (higher is better)",
                 "paired difference to the paper's ramp at the same seeds",
                 "paper's ablation order", "zero-cost  scoring 3 ramp(s) x 2 seed(s)"):
        assert text in out
    page = (results / "fid" / "report.html").read_text()
    assert "How far the proxy ranking can be trusted" in page and 'id="plot-0"' in page
    assert "Paired difference to the paper" in page


def test_running_again_trains_nothing(measured):
    results, _ = measured
    _, before = fidelity_trials(results, "fid")
    done = rampsearch("fidelity", *TINY, "--results", str(results), "--study", "fid")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "6 of 6 trainings already in the study, 0 to run" in done.stdout
    _, after = fidelity_trials(results, "fid")
    assert [(t.number, t.user_attrs["top1"]) for t in after] == \
        [(t.number, t.user_attrs["top1"]) for t in before]


def test_a_second_proxy_is_measured_on_the_same_ramps(measured, ray_cluster):
    results, _ = measured
    more = TINY + ["--proxy", "epochs=1,train_samples=192,val_samples=64,batch_size=64,"
                              "width=0.125"]
    done = rampsearch("fidelity", *more, "--results", str(results), "--study", "fid",
                      ray_address=ray_cluster)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "proxy2: 0 of 6 trainings already in the study, 6 to run" in done.stdout
    assert "reference: 6 of 6 trainings already in the study, 0 to run" in done.stdout
    _, trials = fidelity_trials(results, "fid")
    assert {t.user_attrs["seed"] for t in trials
            if t.user_attrs["fidelity_setting"] == "proxy2"} == {0, 1}
    summary = pd.read_csv(results / "fid" / "fidelity_summary.csv")
    assert "proxy2" in set(summary["scorer"])
    swapped = TINY[:-4] + ["--proxy", "epochs=1,train_samples=64,val_samples=64,batch_size=64,"
                                      "width=0.125"] + TINY[-2:]
    refused = rampsearch("fidelity", *swapped, "--results", str(results), "--study", "fid")
    assert refused.returncode == 2 and "already exists with other settings" in refused.stderr


def test_another_reference_in_the_same_study_is_refused(measured):
    results, _ = measured
    changed = TINY[:-1] + ["epochs=3"]
    done = rampsearch("fidelity", *changed, "--results", str(results), "--study", "fid")
    assert done.returncode == 2
    assert "another reference setting" in done.stderr and "Traceback" not in done.stderr


def test_more_reference_seeds_train_only_the_reference(measured, ray_cluster):
    results, _ = measured
    _, before = fidelity_trials(results, "fid")
    done = rampsearch("fidelity", *TINY, "--reference-seeds", "3", "--no-zero-cost",
                      "--results", str(results), "--study", "fid", ray_address=ray_cluster)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "proxy: 6 of 6 trainings already in the study, 0 to run" in done.stdout
    assert "reference: 6 of 9 trainings already in the study, 3 to run" in done.stdout
    _, after = fidelity_trials(results, "fid")
    added = {t.number for t in after} - {t.number for t in before}
    assert {(t.user_attrs["fidelity_setting"], t.user_attrs["seed"])
            for t in after if t.number in added} == {("reference", 102)}
    summary = pd.read_csv(results / "fid" / "fidelity_summary.csv")
    blocked = summary.set_index(["score", "scorer"])["blocked_seeds"]
    assert blocked[("val_loss", "reference")] == 3 and blocked[("val_loss", "proxy")] == 2
    refused = rampsearch("fidelity", *TINY, "--reference-seeds", "0", "--no-train",
                         "--results", str(results), "--study", "fid")
    assert refused.returncode == 2 and "--reference-seeds 0" in refused.stderr
    assert "Traceback" not in refused.stderr
