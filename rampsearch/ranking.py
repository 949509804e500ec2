"""Ranking with confidence: re-train the leaders with several seeds and compare means.

A proxy score from one seed carries seed noise that can exceed the differences between ramps
(the paper's own ablation separates ramps by 0.5-0.7 top-1). Re-evaluation trains the top K
candidates and the paper's ramp with S seeds at a higher fidelity, keeps those runs in the
study (role ``reeval``, no sampler parameters, so the sampler never mixes fidelities), and
ranks by the mean with a 95% t-interval; a leader whose difference from the first is not
significant (Welch's t-test, p >= 0.05) is reported as tied with it.
"""

from __future__ import annotations

import math

import optuna
import pandas as pd
from scipy import stats

from . import study as study_lib
from .search import FixedJob

REEVAL = "reeval"


def leaders(frame: pd.DataFrame, top_k: int) -> pd.DataFrame:
    """The top K completed, within-budget candidates, then the paper's ramp."""
    done = frame[frame["status"] == "completed"]
    top = done[(done["role"] == "candidate") & done["within_budget"]].head(top_k)
    paper = done[done["role"] == "baseline:paper"].head(1)
    return pd.concat([top, paper])


def reeval_jobs(study: optuna.Study, chosen: pd.DataFrame, seeds: int, epochs: int
                ) -> list[FixedJob]:
    """Jobs for every (ramp, seed) not yet re-evaluated at this number of epochs."""
    done = {(t.user_attrs.get("source_trial"), t.user_attrs.get("seed"))
            for t in study_lib.ended_trials(study, REEVAL)
            if t.user_attrs.get("reeval_epochs") == epochs}
    jobs = []
    for _, row in chosen.iterrows():
        ramp = [int(a) for a in row["attention_heads"].split(",")]
        for seed in range(seeds):
            if (int(row["trial"]), seed) in done:
                continue
            jobs.append(FixedJob(REEVAL, f"#{row['trial']} seed {seed}", ramp, seed=seed,
                                 attrs={"source_trial": int(row["trial"]),
                                        "source_role": row["role"], "reeval_epochs": epochs}))
    return jobs


def reeval_summary(study: optuna.Study, epochs: int | None = None) -> pd.DataFrame:
    """Mean, spread and 95% interval of each re-evaluated ramp, best first, with whether it
    can be told apart from the leader."""
    runs: dict[int, dict] = {}
    for trial in study_lib.ended_trials(study, REEVAL):
        attrs = trial.user_attrs
        if attrs.get("status") != "completed" or "top1" not in attrs:
            continue
        if epochs is not None and attrs.get("reeval_epochs") != epochs:
            continue
        entry = runs.setdefault(attrs["source_trial"], {
            "trial": attrs["source_trial"], "role": attrs.get("source_role", "candidate"),
            "epochs": attrs.get("reeval_epochs"), "scores": []})
        entry["scores"].append(float(attrs["top1"]))
    rows = []
    for entry in runs.values():
        scores = entry.pop("scores")
        n = len(scores)
        mean = sum(scores) / n
        std = math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1)) if n > 1 else float("nan")
        half = stats.t.ppf(0.975, n - 1) * std / math.sqrt(n) if n > 1 else float("nan")
        rows.append({**entry, "seeds": n, "mean_top1": mean, "std_top1": std, "ci95": half,
                     "scores": scores})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame = frame.sort_values("mean_top1", ascending=False).reset_index(drop=True)
    leader = frame.iloc[0]["scores"]
    verdicts = []
    for scores in frame["scores"]:
        if scores is leader:
            verdicts.append("leader")
        elif len(scores) < 2 or len(leader) < 2:
            verdicts.append("too few seeds")
        else:
            p = stats.ttest_ind(leader, scores, equal_var=False).pvalue
            verdicts.append(f"tied with leader (p={p:.2f})" if p >= 0.05 or math.isnan(p)
                            else f"below leader (p={p:.3f})")
    frame["verdict"] = verdicts
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame


def format_reeval(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(no re-evaluations yet)"
    lines = [f"{'rank':>4}  {'ramp':<18} {'seeds':>5}  {'mean top-1':>10}  {'95% CI':>8}  "
             f"{'std':>5}  verdict"]
    for _, row in frame.iterrows():
        label = (str(row["role"]).removeprefix("baseline:") + " ramp"
                 if str(row["role"]).startswith("baseline") else f"trial {row['trial']}")
        lines.append(f"{row['rank']:>4}  {label:<18} {row['seeds']:>5}  {row['mean_top1']:>10.2f}"
                     f"  {_pm(row['ci95']):>8}  {row['std_top1']:>5.2f}  {row['verdict']}")
    return "\n".join(lines)


def _pm(value: float) -> str:
    return "-" if math.isnan(value) else f"±{value:.2f}"
