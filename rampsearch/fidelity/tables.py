"""How far a proxy ranking can be trusted: the same ramps trained under two settings.

``rampsearch fidelity`` trains K ramps (the paper's ramp, the ablation baselines, and ramps
drawn from the space by seed) with S seeds under a cheap *proxy* setting and an expensive
*reference* setting, and compares the two rankings of the seed means of both scores
(validation loss and top-1):

- Kendall tau (with its exact p-value and a 95% bootstrap interval over ramps) and Spearman
  rho; with K = 8 the interval is wide, and it is printed so nobody forgets;
- seed noise (pooled within-ramp standard deviation) against the spread between ramps
  (standard deviation of the ramp means), per setting: a proxy whose noise is near its
  spread ranks noise;
- the overlap of the top k (k = K/3, rounded);
- CPU-minutes per trial of each setting, and the zero-cost scores of the same ramps.

The statistics are plain functions of numbers, so they are tested on hand-made data; the runs
live in the study storage as trials of role ``fidelity``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
import pandas as pd

from ..attributes import Attr, Role, Status, StudyAttr
from ..ranking.leaderboard import compact_ramp
from ..ranking.paired import common_seeds, paired_difference, seed_blocked
from ..study import storage as study_lib
from ..study.objective import OBJECTIVES, format_number
from ..training.proxy import ProxySettings
from ..training.zero_cost import ZERO_COST_SCORES
from .learning_curve import extrapolated_loss
from .statistics import (
    kendall_tau_b,
    noise_and_spread,
    ramps_differ_p,
    rank_agreement,
    reliability_at,
    seed_agreement,
    seeds_for_reliability,
    single_seed_tau,
    tau_ceiling,
    top_k_overlap,
)


def fidelity_runs(study: optuna.Study) -> pd.DataFrame:
    """One row per fidelity run that ended by itself: label, ramp, setting, seed, status,
    top1, val_loss, wall_s, cpus, flops, params and the per-epoch curve of the study's
    objective."""
    rows = []
    for trial in study_lib.ended_trials(study, Role.FIDELITY):
        attrs = trial.user_attrs
        rows.append({
            "trial": trial.number, "label": attrs.get(Attr.RAMP_LABEL),
            "ramp": attrs[Attr.RAMP],
            "setting": attrs.get(Attr.FIDELITY_SETTING), "seed": attrs.get(Attr.SEED),
            "status": attrs.get(Attr.STATUS), "top1": attrs.get(Attr.TOP1),
            "val_loss": attrs.get(Attr.VAL_LOSS),
            "wall_s": attrs.get(Attr.WALL_S), "cpus": attrs.get(Attr.CPUS, 1.0),
            "flops": attrs.get(Attr.FLOPS), "params": attrs.get(Attr.PARAMS),
            "curve": dict(trial.intermediate_values)})
    return pd.DataFrame(rows, columns=["trial", "label", "ramp", "setting", "seed", "status",
                                       "top1", "val_loss", "wall_s", "cpus", "flops", "params",
                                       "curve"])


def setting_names(runs: pd.DataFrame) -> list[str]:
    """The settings measured: the proxies in the order they were named, then the reference."""
    names = [n for n in dict.fromkeys(runs["setting"]) if n != "reference"]
    return sorted(names, key=lambda n: (n != "proxy", n)) + ["reference"]


def tabled_runs(runs: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, tuple[int, int]]]:
    """(the runs the tables compare, {left-out setting: (ramps it has, ramps the reference
    has)}). A scorer without an ended run of every ramp the reference has completed (an
    interrupted measurement, a setting added later) is left out until it has them: the
    tables compare every scorer on the same ramps, and one unfinished scorer would otherwise
    cut every row to the ramps it has."""
    reference = set(runs.loc[(runs["setting"] == "reference")
                             & (runs["status"] == Status.COMPLETED), "label"])
    left_out = {}
    for name in setting_names(runs)[:-1]:
        have = set(runs.loc[runs["setting"] == name, "label"])
        if not reference <= have:
            left_out[name] = (len(have & reference), len(reference))
    return runs[~runs["setting"].isin(list(left_out))], left_out


def seed_runs(runs: pd.DataFrame, setting: str, score: str = "top1"
              ) -> dict[str, dict[int, float]]:
    """Completed ``score`` of each ramp label under ``setting``, keyed by seed."""
    done = runs[(runs["setting"] == setting) & (runs["status"] == Status.COMPLETED)
                & runs[score].notna()]
    scores: dict[str, dict[int, float]] = {}
    for _, row in done.sort_values("seed").iterrows():
        scores.setdefault(row["label"], {})[int(row["seed"])] = float(row[score])
    return scores


def shared_seed_scores(by_seed: Mapping[str, Mapping[int, float]]) -> dict[str, list[float]]:
    """Each ramp's scores at the seeds every ramp has (the same batches for all, so the seed
    effect cancels between their means; a measurement interrupted within a seed then does
    not compare 3-seed means with 2-seed ones). Without a seed shared by all, every ramp's
    own seeds."""
    shared = common_seeds(*by_seed.values())
    if not shared:
        return {label: list(runs.values()) for label, runs in by_seed.items()}
    return {label: [runs[seed] for seed in shared] for label, runs in by_seed.items()}


def cpu_minutes_per_trial(runs: pd.DataFrame, setting: str) -> float:
    """Mean training CPU time of one completed trial of ``setting`` (wall time x CPUs)."""
    done = runs[(runs["setting"] == setting) & (runs["status"] == Status.COMPLETED)]
    if done.empty:
        return math.nan
    return float((done["wall_s"].astype(float) * done["cpus"].astype(float)).mean() / 60)


# -------------------------------------------------------------------------------- tables
def ramp_table(runs: pd.DataFrame, zero_cost: Mapping[str, Mapping[str, Any]],
               depths: Sequence[int], score: str = "top1",
               curve_targets: Mapping[str, tuple[int, int]] | None = None) -> pd.DataFrame:
    """One row per ramp with results under every setting: seed means and stds of ``score``,
    ranks (1 is best: highest top-1, lowest loss), zero-cost scores, parameters (millions)
    and, for each setting in ``curve_targets`` ({setting: (steps per epoch, the reference's
    steps)}), the learning-curve score ``<setting>_curve``: the mean over seeds of each run's
    loss curve extrapolated to the reference's length. Best reference first."""
    names = setting_names(runs)
    higher = OBJECTIVES[score].maximize
    by_seed = {name: seed_runs(runs, name, score) for name in names}
    labels = [label for label in dict.fromkeys(runs["label"])
              if all(label in by_seed[name] for name in names)]
    per_setting = {name: shared_seed_scores({k: by_seed[name][k] for k in labels})
                   for name in names}
    rows = []
    for label in labels:
        first = runs[runs["label"] == label].iloc[0]
        row: dict[str, Any] = {"label": label, "ramp": compact_ramp(first["ramp"], depths),
                               "gflops": first["flops"] / 1e9}
        for name in names:
            values = per_setting[name][label]
            row[f"{name}_mean"] = float(np.mean(values))
            row[f"{name}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
            row[f"{name}_seeds"] = len(values)
            row.update(versus_paper(by_seed[name], label, higher, name))
        for zero in ZERO_COST_SCORES:
            row[zero] = float(zero_cost.get(label, {}).get(zero, math.nan))
        params = first.get("params")
        row["mparams"] = math.nan if params is None or pd.isna(params) else params / 1e6
        for name, (steps_per_epoch, target) in (curve_targets or {}).items():
            row[f"{name}_curve"] = curve_score(runs, label, name, steps_per_epoch, target)
        row["attention_heads"] = ",".join(str(a) for a in first["ramp"])
        rows.append(row)
    columns = (["label", "ramp", "gflops"]
               + [f"{n}_{c}" for n in names for c in ("mean", "std", "seeds")]
               + [f"{n}_{c}" for n in names for c in VERSUS_PAPER]
               + [f"{n}_rank" for n in names] + [*ZERO_COST_SCORES, "mparams"]
               + [f"{n}_curve" for n in (curve_targets or {})] + ["attention_heads"])
    table = pd.DataFrame(rows, columns=[c for c in columns if not c.endswith("_rank")])
    if table.empty:
        return pd.DataFrame(columns=columns)
    for name in names:
        table[f"{name}_rank"] = table[f"{name}_mean"].rank(ascending=not higher,
                                                            method="min").astype(int)
    return table[columns].sort_values("reference_rank", kind="stable").reset_index(drop=True)


def curve_score(runs: pd.DataFrame, label: str, setting: str, steps_per_epoch: int,
                target_steps: int) -> float:
    """Mean over the completed runs of ``label`` under ``setting`` of their loss curves
    extrapolated to ``target_steps`` (NaN where no run has a slope)."""
    done = runs[(runs["label"] == label) & (runs["setting"] == setting)
                & (runs["status"] == Status.COMPLETED)]
    values = [extrapolated_loss(curve, steps_per_epoch, target_steps)
              for curve in done["curve"]]
    values = [v for v in values if math.isfinite(v)]
    return float(np.mean(values)) if values else math.nan


def curve_targets(fidelity: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """{proxy setting: (its steps per epoch, the reference's steps)} for every stored proxy
    setting whose runs record a curve of two or more epochs."""
    reference = fidelity.get("reference")
    if not reference:
        return {}
    target = ProxySettings.from_dict(reference)
    target_steps = target.epochs * target.steps_per_epoch
    found = {}
    for name, stored in (fidelity.get("proxies") or {}).items():
        settings = ProxySettings.from_dict(stored)
        if settings.epochs >= 2:
            found[name] = (settings.steps_per_epoch, target_steps)
    return found


# Baselines a proxy must beat: a bigger model (more FLOPs, more parameters) predicted better.
SIZE_SCORERS = ("gflops", "mparams")
PAPER_LABEL = "paper"  # the space's baseline name of the paper's ramp
VERSUS_PAPER = ("vs_paper", "vs_paper_low", "vs_paper_high", "vs_paper_seeds", "verdict",
                "seeds_to_separate")


def versus_paper(by_seed: Mapping[str, Mapping[int, float]], label: str, maximize: bool,
                 setting: str) -> dict[str, Any]:
    """``label``'s paired difference to the paper's ramp under one setting, at the seeds the
    two share, as the race's last look computes it: mean, 95% interval, seeds, verdict
    (better, worse, not separated) and the seeds a non-separated observed difference would
    need. Empty cells for the paper's
    ramp itself, and where the paper's ramp was not measured."""
    cells: dict[str, Any] = {f"{setting}_{c}": math.nan for c in VERSUS_PAPER}
    cells[f"{setting}_verdict"] = ""
    if label == PAPER_LABEL or PAPER_LABEL not in by_seed:
        return cells
    diff = paired_difference(by_seed[label], by_seed[PAPER_LABEL], maximize)
    if diff.seeds < 2:
        return cells
    values = (diff.mean, diff.low, diff.high, diff.seeds, diff.verdict,
              math.nan if diff.seeds_to_separate is None else diff.seeds_to_separate)
    return {f"{setting}_{c}": value for c, value in zip(VERSUS_PAPER, values, strict=True)}


def summary_table(table: pd.DataFrame, runs: pd.DataFrame, score: str = "top1"
                  ) -> pd.DataFrame:
    """One row per scorer (each proxy setting, then each zero-cost score) against the
    reference's seed-mean ``score``, and a row for the reference itself (its noise and cost).
    Noise is given unpaired (pooled within-ramp std) and seed-blocked (two-way ramp + seed
    analysis over the seeds every ramp has), with the reliability of a mean of 1, 2 and 3
    seeds and the seeds needed for 0.8."""
    rows = []
    labels = set(table["label"])
    sign = OBJECTIVES[score].sign()
    names = setting_names(runs)
    reference = sign * table["reference_mean"].to_numpy(dtype=float)  # higher is better
    curves = [c for c in table.columns if c.endswith("_curve")]
    scorers = (*[n for n in names if n != "reference"], *curves, *ZERO_COST_SCORES,
               *SIZE_SCORERS, "reference")
    for scorer in scorers:
        row: dict[str, Any] = {"score": score, "scorer": scorer, "ramps": len(table)}
        if scorer != "reference":
            values = (sign * table[f"{scorer}_mean"] if scorer in names
                      else sign * table[scorer] if scorer in curves
                      else table[scorer]).to_numpy(dtype=float)
            keep = np.isfinite(values)
            agreement = rank_agreement(values[keep], reference[keep]) if keep.sum() else None
            if agreement is not None:
                row.update({k: v for k, v in dataclasses.asdict(agreement).items() if k != "n"})
                row["ramps"] = agreement.n
                row["top10_k"] = top_tenth(int(keep.sum()))
                row["top10_recall"] = top_k_overlap(values[keep], reference[keep],
                                                    row["top10_k"])
            if scorer != "proxy" and "proxy" in names:  # against the stand-alone proxy
                proxy = sign * table["proxy_mean"].to_numpy(dtype=float)
                both = keep & np.isfinite(proxy)
                if both.sum() >= 2:
                    versus = rank_agreement(values[both], proxy[both])
                    row.update(proxy_tau=versus.kendall_tau, proxy_tau_low=versus.tau_low,
                               proxy_tau_high=versus.tau_high)
        if scorer in names:
            by_seed = {k: v for k, v in seed_runs(runs, scorer, score).items() if k in labels}
            scores = shared_seed_scores(by_seed)  # seed_agreement pairs seeds by position
            noise = noise_and_spread(scores)
            blocked = seed_blocked(by_seed)
            row.update(noise_std=noise.noise_std, spread_std=noise.spread_std,
                       noise_to_spread=noise.noise_to_spread, reliability=noise.reliability,
                       ramps_differ_p=ramps_differ_p(scores), seed_tau=seed_agreement(scores),
                       blocked_noise_std=blocked.noise_std, blocked_seeds=blocked.seeds,
                       blocked_reliability=blocked.reliability,
                       blocked_differ_p=blocked.ramps_differ_p,
                       **{f"reliability_{n}_seeds": reliability_at(
                           blocked.noise_std, blocked.spread_std, blocked.seeds, n)
                          for n in (1, 2, 3)},
                       seeds_for_08=seeds_for_reliability(blocked.noise_std,
                                                          blocked.spread_std, blocked.seeds),
                       single_seed_tau=math.nan if scorer == "reference" else single_seed_tau(
                           by_seed, dict(zip(table["label"], table["reference_mean"]))),
                       cpu_min_per_trial=cpu_minutes_per_trial(runs, scorer))
        if scorer in curves:  # read off the proxy's own runs: no training of its own
            row["cpu_min_per_trial"] = cpu_minutes_per_trial(runs, scorer.removesuffix("_curve"))
        rows.append(row)
    summary = pd.DataFrame(rows).reindex(columns=SUMMARY_COLUMNS)
    summary["tau_per_cpu_min"] = summary["kendall_tau"] / summary["cpu_min_per_trial"]
    reference_reliability = float(
        summary.loc[summary["scorer"] == "reference", "blocked_reliability"].iloc[0])
    proxies = summary["scorer"].isin([n for n in names if n != "reference"])
    summary.loc[proxies, "tau_ceiling"] = [
        tau_ceiling(float(r), reference_reliability)
        for r in summary.loc[proxies, "blocked_reliability"]]
    return summary


SUMMARY_COLUMNS = ["score", "scorer", "ramps", "kendall_tau", "tau_p", "tau_low", "tau_high",
                   "spearman_rho", "rho_p", "rho_low", "rho_high", "top_k", "top_k_overlap",
                   "top10_k", "top10_recall", "proxy_tau", "proxy_tau_low", "proxy_tau_high",
                   "noise_std",
                   "spread_std", "noise_to_spread", "reliability", "ramps_differ_p",
                   "seed_tau", "blocked_noise_std", "blocked_seeds", "blocked_reliability",
                   "blocked_differ_p", "reliability_1_seeds", "reliability_2_seeds",
                   "reliability_3_seeds", "seeds_for_08", "single_seed_tau",
                   "tau_ceiling", "cpu_min_per_trial", "tau_per_cpu_min"]


def top_tenth(n: int) -> int:
    """The size of the best 10% of n ramps (at least one)."""
    return max(1, round(n / 10))


def epoch_agreement(runs: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Kendall tau of the seed-mean learning curve (the study's objective per epoch) of each
    setting after each epoch against the reference's final seed-mean in ``table`` (of the
    same score): how early in a schedule the ranking settles. (Epoch e of a longer schedule
    is not an e-epoch proxy, whose learning rate decays sooner.)"""
    reference = dict(zip(table["label"], table["reference_mean"]))
    rows = []
    done = runs[(runs["status"] == Status.COMPLETED) & runs["label"].isin(reference)]
    for setting, group in done.groupby("setting", sort=False):
        epochs = sorted({e for curve in group["curve"] for e in curve})
        for epoch in epochs:
            means = {}
            for label, runs_of_ramp in group.groupby("label"):
                values = [c[epoch] for c in runs_of_ramp["curve"] if epoch in c]
                if values:
                    means[label] = float(np.mean(values))
            if len(means) < 2:
                continue
            labels = sorted(means)
            tau = kendall_tau_b(np.array([means[k] for k in labels]),
                                np.array([reference[k] for k in labels]))
            rows.append({"setting": setting, "epoch": epoch, "ramps": len(labels),
                         "kendall_tau": float(tau)})
    return pd.DataFrame(rows, columns=["setting", "epoch", "ramps", "kendall_tau"])


def format_tables(table: pd.DataFrame, summary: pd.DataFrame, score: str = "top1") -> str:
    """The per-ramp table and the summary of one score, as text."""
    if table.empty:
        return "(no ramp has results under every setting yet)"
    names = [c.removesuffix("_rank") for c in table.columns if c.endswith("_rank")]
    title = OBJECTIVES[score].title
    digits = 4 if score == "val_loss" else 2
    header = f"{'ramp':<22} {'GFLOPs':>6}  " + "  ".join(
        f"{name + ' ' + title:>17} {'#':>2}" for name in names)
    lines = [f"by {score} ({'lower' if score == 'val_loss' else 'higher'} is better)",
             header + f"  {'synflow':>9} {'naswot':>8} {'grad_norm':>9}"]
    for _, row in table.iterrows():
        cells = "  ".join(f"{_mean_std(row, name, digits):>17} {row[f'{name}_rank']:>2}"
                          for name in names)
        lines.append(f"{row['label']:<22} {row['gflops']:>6.3f}  {cells}  "
                     f"{row['synflow']:>9.4g} {row['naswot']:>8.2f} {row['grad_norm']:>9.4g}")
    lines += versus_paper_lines(table, names, digits)
    lines.append("")
    lines.append(f"{'against reference':<18} {'tau':>6} {'95% interval':>15} {'p':>6} "
                 f"{'tau@1':>6} {'ceiling':>7} "
                 f"{'rho':>6} {'top-k':>6} {'top-10%':>7} {'vs proxy':>8}   {'noise':>7} {'paired':>7} {'spread':>7} "
                 f"{'rel@1':>5} {'rel@3':>5} {'seeds@0.8':>9} {'seed tau':>8} "
                 f"{'CPU-min/trial':>13} {'tau/CPU-min':>11}")
    spec = f".{digits}f"
    for _, row in summary.iterrows():
        interval = ("" if pd.isna(row["tau_low"])
                    else f"[{row['tau_low']:+.2f}, {row['tau_high']:+.2f}]")
        top = "" if pd.isna(row["top_k_overlap"]) else \
            f"{round(row['top_k_overlap'] * row['top_k'])}/{int(row['top_k'])}"
        top10 = "" if pd.isna(row["top10_recall"]) else \
            f"{round(row['top10_recall'] * row['top10_k'])}/{int(row['top10_k'])}"
        lines.append(
            f"{row['scorer']:<18} {format_number(row['kendall_tau'], '+.2f'):>6} {interval:>15} "
            f"{format_number(row['tau_p'], '.3f'):>6} {format_number(row['single_seed_tau'], '+.2f'):>6} "
            f"{format_number(row['tau_ceiling'], '+.2f'):>7} "
            f"{format_number(row['spearman_rho'], '+.2f'):>6} {top:>6} {top10:>7} "
            f"{format_number(row['proxy_tau'], '+.2f'):>8}   "
            f"{format_number(row['noise_std'], spec):>7} {format_number(row['blocked_noise_std'], spec):>7} "
            f"{format_number(row['spread_std'], spec):>7} {format_number(row['reliability_1_seeds'], '.2f'):>5} "
            f"{format_number(row['reliability_3_seeds'], '.2f'):>5} {format_number(row['seeds_for_08'], '.0f'):>9} "
            f"{format_number(row['seed_tau'], '+.2f'):>8} {format_number(row['cpu_min_per_trial'], '.2f'):>13} "
            f"{format_number(row['tau_per_cpu_min'], '+.3f'):>11}")
    reference = summary[summary["scorer"] == "reference"]
    if not reference.empty:
        lines.append(reference_caveat(reference.iloc[0]))
    lines.append(paper_order_line(table))
    lines.append("tau: of the seed means; tau@1: of one seed's ranking, mean over seeds; "
                 "ceiling: the tau a proxy ranking exactly like the reference would reach, "
                 "given both settings' seed noise; noise: pooled seed std; paired: residual std "
                 "once the seed effects shared by every ramp are removed; rel@S: seed-blocked "
                 "reliability of a mean of S seeds; top-10%: of the reference's best tenth, "
                 "how many the scorer also puts in its best tenth; vs proxy: tau against the "
                 "stand-alone proxy's seed means; <proxy>_curve: the proxy's loss curves "
                 "extrapolated to the reference's steps; gflops, mparams: a bigger model "
                 "ranked better, the baselines a proxy must beat.")
    return "\n".join(lines)


# The iFormer paper's ablation (iFormer-S, 100 ImageNet epochs, top-1): its ramp first.
PAPER_ABLATION = {"paper": 81.2, "equal_split": 80.7, "reverse_ramp": 80.5}


def paper_order_line(table: pd.DataFrame) -> str:
    """The reference's order of the paper's three ablation ramps beside the paper's ImageNet
    order (paper's ramp > equal split > reverse ramp), by the reference's seed means."""
    ranks = dict(zip(table["label"], table["reference_rank"]))
    if not all(label in ranks for label in PAPER_ABLATION):
        return "paper's ablation order: not measured (the reference lacks one of its ramps)"
    measured = sorted(PAPER_ABLATION, key=lambda label: ranks[label])
    same = measured == list(PAPER_ABLATION)
    return ("paper's ablation order (ImageNet, 100 epochs: paper 81.2 > equal_split 80.7 > "
            "reverse_ramp 80.5 top-1): the reference ranks "
            + " > ".join(f"{label} (#{ranks[label]})" for label in measured)
            + (", the same order" if same else ", another order")
            + " (differences within the noise are in the verdicts above)")


def versus_paper_lines(table: pd.DataFrame, names: Sequence[str], digits: int) -> list[str]:
    """Each ramp's paired difference to the paper's ramp under every setting, as text; none
    when the paper's ramp is not among the ramps."""
    if PAPER_LABEL not in set(table["label"]):
        return []
    width = 2 * digits + 30
    lines = ["", "paired difference to the paper's ramp at the same seeds, 95% interval "
                 "(~N: the paired seeds a non-separated observed difference would need; each "
                 "ramp's interval at 95% on its own, so where no ramp differs about one in "
                 "twenty still reads better or worse)",
             (f"{'ramp':<22} " + " ".join(f"{name:<{width}}" for name in names)).rstrip()]
    for _, row in table[table["label"] != PAPER_LABEL].iterrows():
        lines.append(f"{row['label']:<22} " + " ".join(
            f"{_difference(row, name, digits):<{width}}" for name in names).rstrip())
    return lines


def _difference(row: pd.Series, name: str, digits: int) -> str:
    if pd.isna(row[f"{name}_vs_paper"]):
        return "-"
    spec = f"+.{digits}f"
    needed = row[f"{name}_seeds_to_separate"]
    return (f"{row[f'{name}_vs_paper']:{spec}} [{row[f'{name}_vs_paper_low']:{spec}}, "
            f"{row[f'{name}_vs_paper_high']:{spec}}] {row[f'{name}_verdict']}"
            + ("" if pd.isna(needed) else f" ~{int(needed)}"))


def reference_caveat(row: pd.Series) -> str:
    """What the reference's own seed noise allows its tau to say: a reference that cannot
    rank the ramps itself can neither confirm nor refute a proxy."""
    reliability, seeds, needed = (row["blocked_reliability"], row["blocked_seeds"],
                                  row["seeds_for_08"])
    if pd.isna(reliability):
        return "the reference's own reliability is unknown (it needs 2 or more seeds)."
    said = f"the reference's own reliability is {reliability:.2f} at {int(seeds)} seeds"
    if reliability >= 0.8:
        return said + ": its ranking is signal, and tau against it measures the proxy."
    said += f" (about {int(needed)} seeds would reach 0.8)" if pd.notna(needed) else ""
    if reliability >= 0.5:
        return (said + ": its ranking is mostly signal but partly seed noise, so read a tau "
                "against it beside its ceiling, not beside 1; more seeds (--reference-seeds) "
                "raise both.")
    return (said + ": its ranking is mostly seed noise, so a tau against it can neither confirm "
            "nor refute a proxy; give it more seeds (--reference-seeds) or ramps further apart.")


def _mean_std(row: pd.Series, name: str, digits: int = 2) -> str:
    std = row[f"{name}_std"]
    return f"{row[f'{name}_mean']:.{digits}f}" + ("" if pd.isna(std) else
                                                  f" ±{std:.{digits}f}")



FIDELITY_SCORES = tuple(OBJECTIVES)  # both scores are ranked


def fidelity_tables(study: optuna.Study, depths: Sequence[int], score: str = "top1"
                    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(per-ramp table, summary against the reference, tau per epoch) of a study's runs by
    ``score``; the tau per epoch only for the score the study's learning curves hold."""
    runs, left_out = tabled_runs(fidelity_runs(study))
    fidelity = study.user_attrs.get(StudyAttr.FIDELITY, {})
    curves = study_lib.study_settings(study).objective.key == score
    # Only a loss is extrapolated by a power law; top-1 curves are ranked per epoch only.
    targets = curve_targets(fidelity) if curves and score == "val_loss" else {}
    targets = {name: target for name, target in targets.items() if name not in left_out}
    table = ramp_table(runs, fidelity.get("zero_cost", {}), depths, score, targets)
    epochs = epoch_agreement(runs, table) if curves else pd.DataFrame(
        columns=["setting", "epoch", "ramps", "kendall_tau"])
    return table, summary_table(table, runs, score), epochs
