"""Ranking with confidence: race the search's leaders against the paper's ramp with seeds.

A proxy score from one seed carries seed noise that can exceed the differences between ramps
(the paper's own ablation separates ramps by 0.5-0.7 top-1). The race (``rampsearch.race``)
re-trains the top K candidates and the paper's ramp with fresh seeds, round by round, drops
a leader as soon as it is significantly worse than the best (seed-paired), and ends with
each leader's paired difference to the paper's ramp and one of three words: better or worse
(the interval excludes 0), equivalent (within the equivalence margin by two one-sided tests),
or not separated (neither: no evidence of a difference, and none of its absence). Its runs
are kept in the study (role ``reeval``, no sampler parameters, so the sampler never mixes
fidelities); the race itself is replayed from them, so it resumes where it stopped. Its
design (leaders, seeds, limits, epochs, objective, margin) is stored when it starts, and a
race of the same study with another design is refused: looking again at the same seeds with
other settings, or at fewer of them, would be a new look, not a new verdict.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

import optuna
import pandas as pd

from ..attributes import PAPER, Attr, Role, Status, StudyAttr
from ..errors import UserError
from ..study import storage as study_lib
from ..study.objective import OBJECTIVES, Objective, format_number
from ..study.trials import FixedJob
from .paired import BETTER, EQUIVALENT, NOT_SEPARATED, WORSE, PairedDifference, seeds_for_power
from .race import MIN_SEEDS, RaceRules, RaceState, next_jobs, replay, reported_leader, verdicts

# The default equivalence margin: this share of the standard deviation of the search's
# scores (one seed per ramp, completed trials). A difference under half the typical
# difference between searched ramps is not worth changing ramps for.
MARGIN_SHARE_OF_SPREAD = 0.5

RACE_COLUMNS = ["trial", "ramp", "seeds", "mean", "diff_vs_paper", "diff_low", "diff_high",
                "verdict"]


def leaders(frame: pd.DataFrame, top_k: int) -> pd.DataFrame:
    """The top K completed, within-budget candidates with distinct ramps (the leaderboard's
    order: by the objective), then the paper's ramp."""
    done = frame[frame["status"] == Status.COMPLETED]
    top = done[(done["role"] == Role.CANDIDATE) & done["within_budget"]]
    # A ramp proposed twice (its second trial told the first one's score) is raced once.
    top = top[~top["ramp"].map(lambda ramp: tuple(ramp)).duplicated()].head(top_k)
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
    rules: RaceRules | None = None  # the race's design
    min_effect: float | None = None  # the smallest effect a new race is sized for


def race_result(study: optuna.Study, chosen: pd.DataFrame, rules: RaceRules, epochs: int,
                objective: Objective, min_effect: float | None = None) -> RaceResult:
    """Replay the race of ``chosen`` (leaders, then the paper's ramp) from the study."""
    keys = [int(t) for t in chosen["trial"]]
    paper = int(chosen[chosen["role"] == PAPER]["trial"].iloc[0])
    scores = {name: restricted(race_runs(study, epochs, name), rules.seeds)
              for name in OBJECTIVES}
    main = scores[objective.key]
    state = replay(main, keys, paper, rules, objective)
    diffs = verdicts(state, main, keys, paper, objective, rules)
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
                      reported_leader(state, diffs, objective), rules, min_effect)


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
            "p": diff.p, "interval_level": diff.level,
            "margin": math.nan if diff.margin is None else diff.margin,
            "diff_sd": diff.sd, "standing": standing,
            "mean_top1": means["mean_top1"], "mean_val_loss": means["mean_val_loss"],
            "objective": objective.key, "attention_heads": row["attention_heads"]}


def format_race(result: RaceResult) -> str:
    """The race as a table: the paper's ramp, then each leader with its paired difference."""
    objective = result.objective
    if result.table.empty:
        return "(no leaders to race)"
    level = f"vs paper ({percent(result_level(result))} interval)"
    lines = [f"{'ramp':<12} {'seeds':>5}  {objective.title:>10}  {'top-1 %':>7}  "
             f"{level:>34}  {'verdict':<13}  standing"]
    paper = result.paper
    lines.append(f"{'paper':<12} {paper['seeds']:>5}  "
                 f"{objective.format(paper[f'mean_{objective.key}']).replace('%', ''):>10}  "
                 f"{format_number(paper['mean_top1'], '.2f'):>7}  {'':>34}  {'':<13}  reference")
    for _, row in result.table.iterrows():
        interval = (f"{objective.format(row['diff_vs_paper'], signed=True)} "
                    f"[{objective.format(row['diff_low'], signed=True)}, "
                    f"{objective.format(row['diff_high'], signed=True)}]")
        lines.append(f"{'trial ' + str(row['trial']):<12} {row['seeds']:>5}  "
                     f"{objective.format(row['mean']).replace('%', ''):>10}  "
                     f"{format_number(row['mean_top1'], '.2f'):>7}  {interval:>34}  {row['verdict']:<13}  "
                     f"{row['standing']}")
    return "\n".join(lines)



def result_level(result: RaceResult) -> float:
    """The level of the verdicts' intervals (the early looks' while the race is unfinished)."""
    levels = result.table.get("interval_level")
    if levels is not None and len(levels) and pd.notna(levels.iloc[0]):
        return float(levels.iloc[0])
    return (result.rules or RaceRules(())).verdict_level


def percent(level: float) -> str:
    """0.95 -> '95%', 0.953 -> '95.3%', 0.99967 -> '99.97%'."""
    return f"{100 * level:.2f}".rstrip("0").rstrip(".") + "%"


def verdict_paragraph(result: RaceResult) -> str:
    """One paragraph: the best ramp, its paired difference to the paper's ramp with the
    interval and the seeds it took, better / worse / equivalent / not separated, and, when
    not separated, the seeds a new race would need to find the smallest effect worth finding."""
    objective, table = result.objective, result.table
    if table.empty:
        return "verdict    no leader could be raced against the paper's ramp."
    state = result.state
    if result.reported is None:
        return ("verdict    no leader has a score to compare with the paper's ramp"
                + (f": {result.state.reason}." if result.state.reason else "."))
    row = table[table["trial"] == result.reported].iloc[0]
    rules = result.rules or RaceRules(())
    direction = "lower is better" if not objective.maximize else "higher is better"
    corrected = (f", corrected for {rules.comparisons} leaders" if rules.comparisons > 1
                 else "")
    diff = (f"{objective.format(row['diff_vs_paper'], signed=True)} {objective.title} "
            f"({direction}; {percent(result_level(result))} interval{corrected} "
            f"{objective.format(row['diff_low'], signed=True)} to "
            f"{objective.format(row['diff_high'], signed=True)}, {row['seeds']} paired seeds "
            f"at {result.epochs} epoch{'s' if result.epochs != 1 else ''})")
    margin = (f"±{objective.format(rules.margin)}" if rules.margin is not None
              else "no margin")
    verdict = {
        BETTER: "better than the paper's ramp (the interval excludes 0)",
        WORSE: "worse than the paper's ramp (the interval excludes 0)",
        EQUIVALENT: f"equivalent to the paper's ramp within {margin} (two one-sided tests)",
        NOT_SEPARATED: (f"not separated from the paper's ramp: the interval holds 0, and the "
                        f"data show neither a difference nor equivalence within {margin}"),
    }[row["verdict"]]
    text = (f"verdict    the best searched ramp, trial {row['trial']} ({row['ramp']}), differs "
            f"under this proxy from the paper's ramp by {diff}: {verdict}.")
    if row["verdict"] == NOT_SEPARATED:
        text += " " + power_statement(result, row)
    if state.finished and state.rounds < len(rules.seeds) and "separated" in state.reason:
        text += (" The race stopped early at a decisive look, so the difference it estimates "
                 "tends to be larger than the true one.")
    if state.dropped:
        text += f" Dropped as significantly worse than the best: {len(state.dropped)} leader(s)."
    text += (" The race scores on the validation images that chose its leaders: a leader's "
             "edge on quirks of those images is not removed, and the interval leaves out the "
             "variance of sampling them.")
    text += (f" The race stopped: {state.reason or 'not finished'}; it took "
             f"{result.trainings} trainings, {result.train_s / 60:.1f} training-minutes.")
    return textwrap.fill(text, width=100, subsequent_indent=" " * 11)


def power_statement(result: RaceResult, row: pd.Series) -> str:
    """The seeds a new race (fresh seeds, its own verdict) would need for 80% power at the
    smallest effect worth finding: --min-effect, or by default one noise standard deviation of
    a training, measured as the paired differences' spread / sqrt(2)."""
    objective = result.objective
    rules = result.rules or RaceRules(())
    sd = float(row.get("diff_sd", math.nan))
    if result.min_effect is not None:
        effect, said = result.min_effect, "--min-effect"
    else:
        effect = sd / math.sqrt(2) if math.isfinite(sd) else math.nan
        said = "one noise standard deviation of a training, measured here; --min-effect sets it"
    if not math.isfinite(sd) or not sd > 0 or not math.isfinite(effect):
        return ("Its noise is not measured (the paired differences do not vary), so no size "
                "of a new race can be given.")
    need = seeds_for_power(effect, sd, rules.verdict_level, least=MIN_SEEDS)
    size = (f"about {need} paired seeds" if need is not None
            else "more seeds than any race can train")
    return (f"A new race on fresh seeds would need {size} for 80% power to find a difference "
            f"of {objective.format(effect)} ({said}); this race cannot be extended to get "
            f"there, since more looks at its seeds would inflate its error rates.")


def default_margin(frame: pd.DataFrame, objective: Objective) -> float | None:
    """MARGIN_SHARE_OF_SPREAD of the standard deviation of the completed stand-alone trials'
    scores (None with fewer than three, or no spread). Supernet scores do not count: they are
    on another scale than the race's stand-alone trainings (a one-shot study's spread of
    supernet scores over 1,000 ramps was 4x the race's noise), so a one-shot study has no
    default margin and its race says "equivalent" only within a --margin given."""
    done = frame[frame["status"] == Status.COMPLETED]
    if "score_source" in done:
        done = done[done["score_source"] != "supernet"]
    done = done[objective.key].astype(float)
    done = done[done.map(math.isfinite)]
    if len(done) < 3 or not float(done.std(ddof=1)) > 0:
        return None
    return MARGIN_SHARE_OF_SPREAD * float(done.std(ddof=1))


# The settings that make a race's design: a race continued or replayed with others is refused.
DESIGN_KEYS = ("trials", "reeval_top", "max_seeds", "max_trainings", "epochs", "objective",
               "margin_given")


def race_design(chosen: pd.DataFrame, rules: RaceRules, epochs: int, objective: Objective,
                reeval_top: int, max_seeds: int, margin_given: float | None,
                min_effect: float | None = None) -> dict:
    """What a race is, fixed at its start, as a study attribute."""
    return {"trials": [int(t) for t in chosen["trial"]], "seeds": list(rules.seeds),
            "epochs": epochs, "max_trainings": rules.max_trainings, "reeval_top": reeval_top,
            "max_seeds": max_seeds, "objective": objective.key, "margin_given": margin_given,
            "margin": rules.margin, "comparisons": rules.comparisons,
            "interim_level": rules.interim_level, "level": rules.level,
            "min_effect": min_effect}


def check_race_design(stored: Mapping | None, asked: Mapping, study_name: str) -> None:
    """Refuse, in one paragraph, a race whose design differs from the study's stored race."""
    if not stored:
        return
    differ = [key for key in DESIGN_KEYS if key in stored and stored[key] != asked[key]]
    if not differ:
        return
    given = "; ".join(f"{key} {stored[key]} -> {asked[key]}" for key in differ)
    margin = ("" if stored.get("margin_given") is None
              else f" --margin {stored['margin_given']}")
    trainings = ("" if stored.get("max_trainings") is None
                 else f" --max-trainings {stored['max_trainings']}")
    raise UserError(
        f"study {study_name!r} already holds a race with another design ({given}); a race "
        f"keeps the design it started with, and judging its seeds again with other settings "
        f"or fewer seeds is not a new verdict. Replay or finish it with `rampsearch rank "
        f"--study {study_name} --reeval-top {stored.get('reeval_top')} --max-seeds "
        f"{stored.get('max_seeds')}{trainings}{margin}`, or race other settings in a new "
        f"study.")


def store_race(study: optuna.Study, design: dict) -> None:
    """Remember the race's design (:func:`race_design`) so it is replayed, never redesigned."""
    study.set_user_attr(StudyAttr.RACE, design)


def stored_rules(race: Mapping) -> RaceRules:
    """The RaceRules of a stored design (a study raced before designs were stored: one
    comparison per leader, no margin)."""
    return RaceRules(tuple(race["seeds"]), race.get("max_trainings"),
                     int(race.get("comparisons", len(race["trials"]) - 1)),
                     race.get("margin"),
                     race.get("interim_level", RaceRules(()).interim_level),
                     race.get("level", RaceRules(()).level))


def stored_race(study: optuna.Study, frame: pd.DataFrame) -> RaceResult | None:
    """The last race of the study, replayed from its runs (None when there was none)."""
    race = study.user_attrs.get(StudyAttr.RACE)
    if not race or frame.empty:
        return None
    chosen = frame[frame["trial"].isin(race["trials"])]
    if (chosen["role"] == PAPER).sum() == 0 or len(chosen) < 2:
        return None
    return race_result(study, chosen, stored_rules(race), race["epochs"],
                       study_lib.study_settings(study).objective, race.get("min_effect"))


def race_rounds(study: optuna.Study, chosen: pd.DataFrame, rules: RaceRules, epochs: int,
                objective: Objective, train: Callable[[list[FixedJob]], bool],
                min_effect: float | None = None) -> tuple[RaceResult, bool]:
    """Run the race to its end: replay, train the next round's missing runs with ``train``
    (which returns whether it was interrupted), repeat. Returns the replayed race and whether
    it was interrupted; the same call later resumes an interrupted race."""
    while True:
        result = race_result(study, chosen, rules, epochs, objective, min_effect)
        scores = restricted(race_runs(study, epochs, objective.key), rules.seeds)
        pairs = next_jobs(result.state, scores, rules)  # none beyond max_trainings (replay)
        if not pairs:
            return result, False
        if train(race_jobs(pairs, chosen, epochs)):
            return race_result(study, chosen, rules, epochs, objective, min_effect), True
