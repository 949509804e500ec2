"""Ranking with confidence: race the search's leaders against the paper's ramp with seeds.

A proxy score from one seed carries seed noise that can exceed the differences between ramps
(the paper's own ablation separates ramps by 0.5-0.7 top-1). The race (``rampsearch.race``)
re-trains the top K candidates and the paper's ramp with fresh seeds, round by round, drops
a leader as soon as it is significantly worse than the best (seed-paired), and ends with
each leader's paired difference to the paper's ramp and a verdict: better, worse or tied.
Its runs are kept in the study (role ``reeval``, no sampler parameters, so the sampler never
mixes fidelities); the race itself is replayed from them, so it resumes where it stopped.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

import optuna
import pandas as pd

from ..attributes import PAPER, Attr, Role, Status, StudyAttr
from ..study import storage as study_lib
from ..study.objective import OBJECTIVES, Objective, format_number
from ..study.trials import FixedJob
from .paired import PairedDifference
from .race import RaceRules, RaceState, next_jobs, replay, reported_leader, verdicts

RACE_COLUMNS = ["trial", "ramp", "seeds", "mean", "diff_vs_paper", "diff_low", "diff_high",
                "verdict"]


def leaders(frame: pd.DataFrame, top_k: int) -> pd.DataFrame:
    """The top K completed, within-budget candidates (the leaderboard's order: by the
    objective), then the paper's ramp."""
    done = frame[frame["status"] == Status.COMPLETED]
    top = done[(done["role"] == Role.CANDIDATE) & done["within_budget"]].head(top_k)
    paper = done[done["role"] == PAPER].head(1)
    return pd.concat([top, paper])


def race_runs(study: optuna.Study, epochs: int, key: str
              ) -> dict[int, dict[int, float | None]]:
    """Score ``key`` of every race run at ``epochs``, by source trial and seed; None for a
    run that ended without a score (the ramp diverged or failed by itself)."""
    runs: dict[int, dict[int, float | None]] = {}
    for trial in study_lib.ended_trials(study, Role.REEVAL):
        attrs = trial.user_attrs
        if attrs.get(Attr.REEVAL_EPOCHS) != epochs:
            continue
        value = attrs.get(key) if attrs.get(Attr.STATUS) == Status.COMPLETED else None
        runs.setdefault(int(attrs[Attr.SOURCE_TRIAL]), {})[int(attrs[Attr.SEED])] = (
            float(value) if value is not None and math.isfinite(float(value)) else None)
    return runs


def restricted(runs: Mapping[int, Mapping[int, float | None]], seeds: tuple[int, ...]
               ) -> dict[int, dict[int, float | None]]:
    return {k: {s: v for s, v in r.items() if s in seeds} for k, r in runs.items()}


def race_jobs(pairs: list[tuple[Hashable, int]], chosen: pd.DataFrame, epochs: int
              ) -> list[FixedJob]:
    """FixedJobs for (source trial, seed) pairs of the chosen ramps."""
    rows = {int(row["trial"]): row for _, row in chosen.iterrows()}
    jobs = []
    for source, seed in pairs:
        row = rows[int(source)]
        ramp = [int(a) for a in row["attention_heads"].split(",")]
        jobs.append(FixedJob(Role.REEVAL, f"#{source} seed {seed}", ramp, seed=seed,
                             attrs={Attr.SOURCE_TRIAL: int(source),
                                    Attr.SOURCE_ROLE: row["role"], Attr.REEVAL_EPOCHS: epochs}))
    return jobs


@dataclass(frozen=True)
class RaceResult:
    """A replayed race and its tables."""

    state: RaceState
    table: pd.DataFrame      # one row per leader: RACE_COLUMNS and more
    paper: dict              # the paper's ramp: trial, seeds, mean scores
    history: pd.DataFrame    # one row per round and contestant
    objective: Objective
    epochs: int
    trainings: int = 0        # race runs of these ramps that ended
    train_s: float = 0.0      # their training wall time, summed
    reported: int | None = None  # the leader the verdict speaks of (race.reported_leader)


def race_result(study: optuna.Study, chosen: pd.DataFrame, rules: RaceRules, epochs: int,
                objective: Objective) -> RaceResult:
    """Replay the race of ``chosen`` (leaders, then the paper's ramp) from the study."""
    keys = [int(t) for t in chosen["trial"]]
    paper = int(chosen[chosen["role"] == PAPER]["trial"].iloc[0])
    scores = {name: restricted(race_runs(study, epochs, name), rules.seeds)
              for name in OBJECTIVES}
    main = scores[objective.key]
    state = replay(main, keys, paper, rules, objective)
    diffs = verdicts(state, main, keys, paper, objective)
    rows = {int(row["trial"]): row for _, row in chosen.iterrows()}
    table = pd.DataFrame([leader_row(rows[key], diffs[key], state, key, scores, objective)
                          for key in keys if key != paper])
    table = table.reindex(columns=RACE_COLUMNS + [c for c in table.columns
                                                  if c not in RACE_COLUMNS])
    history = pd.DataFrame(state.history)
    runs = [t for t in study_lib.ended_trials(study, Role.REEVAL)
            if t.user_attrs.get(Attr.REEVAL_EPOCHS) == epochs
            and int(t.user_attrs[Attr.SOURCE_TRIAL]) in keys
            and t.user_attrs.get(Attr.SEED) in rules.seeds]
    return RaceResult(state, table, {"trial": paper, **score_means(scores, paper)}, history,
                      objective, epochs, len(runs),
                      sum(float(t.user_attrs.get(Attr.WALL_S) or 0.0) for t in runs),
                      reported_leader(state, diffs, objective))


def score_means(scores: Mapping[str, Mapping[int, Mapping[int, float | None]]], key: int
                ) -> dict:
    out: dict = {}
    for name, runs in scores.items():
        values = [v for v in runs.get(key, {}).values() if v is not None]
        out[f"mean_{name}"] = sum(values) / len(values) if values else math.nan
        out["seeds"] = max(out.get("seeds", 0), len(values))
    return out


def leader_row(row: pd.Series, diff: PairedDifference, state: RaceState, key: int,
               scores: Mapping[str, Mapping[int, Mapping[int, float | None]]],
               objective: Objective) -> dict:
    means = score_means(scores, key)
    if key in state.failed:
        standing = f"failed at seed {state.failed[key]}"
    elif key in state.dropped:
        standing = f"dropped in round {state.dropped[key]}"
    else:
        standing = "best" if key == state.best else "in the race"
    return {"trial": key, "ramp": row["ramp"], "seeds": diff.seeds,
            "mean": means[f"mean_{objective.key}"], "diff_vs_paper": diff.mean,
            "diff_low": diff.low, "diff_high": diff.high, "verdict": diff.verdict,
            "p": diff.p, "seeds_to_separate": diff.seeds_to_separate, "standing": standing,
            "mean_top1": means["mean_top1"], "mean_val_loss": means["mean_val_loss"],
            "objective": objective.key, "attention_heads": row["attention_heads"]}


def format_race(result: RaceResult) -> str:
    """The race as a table: the paper's ramp, then each leader with its paired difference."""
    objective = result.objective
    if result.table.empty:
        return "(no leaders to race)"
    lines = [f"{'ramp':<12} {'seeds':>5}  {objective.title:>10}  {'top-1 %':>7}  "
             f"{'vs paper (95% interval)':>34}  {'verdict':<7}  standing"]
    paper = result.paper
    lines.append(f"{'paper':<12} {paper['seeds']:>5}  "
                 f"{objective.format(paper[f'mean_{objective.key}']).replace('%', ''):>10}  "
                 f"{format_number(paper['mean_top1'], '.2f'):>7}  {'':>34}  {'':<7}  reference")
    for _, row in result.table.iterrows():
        interval = (f"{objective.format(row['diff_vs_paper'], signed=True)} "
                    f"[{objective.format(row['diff_low'], signed=True)}, "
                    f"{objective.format(row['diff_high'], signed=True)}]")
        lines.append(f"{'trial ' + str(row['trial']):<12} {row['seeds']:>5}  "
                     f"{objective.format(row['mean']).replace('%', ''):>10}  "
                     f"{format_number(row['mean_top1'], '.2f'):>7}  {interval:>34}  {row['verdict']:<7}  "
                     f"{row['standing']}")
    return "\n".join(lines)



def verdict_paragraph(result: RaceResult) -> str:
    """One paragraph: the best ramp, its paired difference to the paper's ramp with the
    interval and the seeds it took, better / tied / worse, and what would separate a tie."""
    objective, table = result.objective, result.table
    if table.empty:
        return "verdict    no leader could be raced against the paper's ramp."
    state = result.state
    if result.reported is None:
        return ("verdict    no leader has a score to compare with the paper's ramp"
                + (f": {result.state.reason}." if result.state.reason else "."))
    row = table[table["trial"] == result.reported].iloc[0]
    direction = "lower is better" if not objective.maximize else "higher is better"
    diff = (f"{objective.format(row['diff_vs_paper'], signed=True)} {objective.title} "
            f"({direction}; 95% interval {objective.format(row['diff_low'], signed=True)} to "
            f"{objective.format(row['diff_high'], signed=True)}, {row['seeds']} paired seeds "
            f"at {result.epochs} epoch{'s' if result.epochs != 1 else ''})")
    verdict = {"better": "better than the paper's ramp", "worse": "worse than the paper's ramp",
               "tied": "tied with the paper's ramp: the data cannot separate them"}[row["verdict"]]
    text = (f"verdict    the best searched ramp, trial {row['trial']} ({row['ramp']}), differs "
            f"under this proxy from the paper's ramp by {diff}: {verdict}.")
    if row["verdict"] == "tied":
        need = row["seeds_to_separate"]
        text += (f" Separating a difference this size would take about {int(need)} paired "
                 f"seeds (`rampsearch rank --reeval-top {len(table)} --max-seeds {int(need)}`)."
                 if need is not None and not pd.isna(need) else
                 " No number of seeds would separate a difference this small.")
    if state.dropped:
        text += f" Dropped as significantly worse than the best: {len(state.dropped)} leader(s)."
    text += (f" The race stopped: {state.reason or 'not finished'}; it took "
             f"{result.trainings} trainings, {result.train_s / 60:.1f} training-minutes.")
    return textwrap.fill(text, width=100, subsequent_indent=" " * 11)


def store_race(study: optuna.Study, chosen: pd.DataFrame, rules: RaceRules, epochs: int
               ) -> None:
    """Remember which ramps were raced, with which seeds, so the report can replay it."""
    study.set_user_attr(StudyAttr.RACE, {"trials": [int(t) for t in chosen["trial"]],
                                         "seeds": list(rules.seeds), "epochs": epochs,
                                         "max_trainings": rules.max_trainings})


def stored_race(study: optuna.Study, frame: pd.DataFrame) -> RaceResult | None:
    """The last race of the study, replayed from its runs (None when there was none)."""
    race = study.user_attrs.get(StudyAttr.RACE)
    if not race or frame.empty:
        return None
    chosen = frame[frame["trial"].isin(race["trials"])]
    if (chosen["role"] == PAPER).sum() == 0 or len(chosen) < 2:
        return None
    return race_result(study, chosen, RaceRules(tuple(race["seeds"]), race["max_trainings"]),
                       race["epochs"], study_lib.study_objective(study))


def race_rounds(study: optuna.Study, chosen: pd.DataFrame, rules: RaceRules, epochs: int,
                objective: Objective, train: Callable[[list[FixedJob]], bool]
                ) -> tuple[RaceResult, bool]:
    """Run the race to its end: replay, train the next round's missing runs with ``train``
    (which returns whether it was interrupted), repeat. Returns the replayed race and whether
    it was interrupted; the same call later resumes an interrupted race."""
    keys = [int(t) for t in chosen["trial"]]
    while True:
        result = race_result(study, chosen, rules, epochs, objective)
        scores = restricted(race_runs(study, epochs, objective.key), rules.seeds)
        pairs = next_jobs(result.state, scores, rules)
        if not pairs:
            return result, False
        done = sum(len(scores.get(k, {})) for k in keys)
        if rules.max_trainings is not None and done + len(pairs) > rules.max_trainings:
            result.state.reason = (f"the next round would exceed the {rules.max_trainings} "
                                   f"race trainings allowed")
            return result, False
        if train(race_jobs(pairs, chosen, epochs)):
            return race_result(study, chosen, rules, epochs, objective), True
