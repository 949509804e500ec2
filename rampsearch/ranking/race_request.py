"""The race a command asks for (the leaders against the paper's ramp), set up and summed up
without Ray: the leaders chosen, the rules, and the lines that announce it and tell its end.
Its trainings run in ``rampsearch.cluster.race_driver``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd

from ..attributes import PAPER, StudyAttr
from ..errors import UserError
from ..study.plan import SearchPlan
from .race import RaceRules, race_seeds
from .race_results import (
    RaceResult,
    check_race_design,
    default_margin,
    format_race,
    leaders,
    race_design,
    verdict_paragraph,
)

INTERRUPTED_NOTE = ("interrupted: finished race trainings are kept; run the same command again "
                    "to complete the race.")


@dataclass(frozen=True)
class RaceRequest:
    """The race flags (--reeval-top, --max-seeds, --max-trainings, --race-epochs, --margin,
    --min-effect)."""

    leaders: int
    max_seeds: int
    max_trainings: int | None = None
    epochs: int | None = None        # None: the search's own
    margin: float | None = None      # None: the stored race's, else from the leaderboard
    min_effect: float | None = None


@dataclass(frozen=True)
class PlannedRace:
    """The ramps to race (the leaderboard rows of the leaders and the paper's ramp), the
    rules, the search plan at the race's epochs, and the design stored with the race."""

    chosen: pd.DataFrame
    rules: RaceRules
    plan: SearchPlan
    design: dict
    min_effect: float | None = None

    @property
    def epochs(self) -> int:
        return self.plan.proxy.epochs


def plan_race(study: optuna.Study, plan: SearchPlan, frame: pd.DataFrame,
              request: RaceRequest) -> PlannedRace:
    """The race of the top ``request.leaders`` of ``frame`` against the paper's ramp, or a
    UserError when there is nothing to race or the study raced with another design."""
    chosen = leaders(frame, request.leaders)
    if (chosen["role"] == PAPER).sum() == 0:
        raise UserError("the race needs the paper's ramp completed in the study; run "
                        f"`rampsearch run --resume --study {plan.location.name}` to train it.")
    if len(chosen) < 2:
        raise UserError("no completed candidate within the budget to race against the "
                        "paper's ramp yet; let the search train some first.")
    epochs = request.epochs or plan.proxy.epochs
    objective = plan.objective
    stored = study.user_attrs.get(StudyAttr.RACE)
    margin = request.margin if request.margin is not None else (
        stored["margin"] if stored and "margin" in stored else default_margin(frame, objective))
    rules = RaceRules(race_seeds(plan.settings.seed, request.max_seeds), request.max_trainings,
                      comparisons=len(chosen) - 1, margin=margin)
    design = race_design(chosen, rules, epochs, objective, request.leaders, request.max_seeds,
                         request.margin, request.min_effect)
    check_race_design(stored, design, plan.location.name)
    race_plan = dataclasses.replace(plan, proxy=dataclasses.replace(plan.proxy, epochs=epochs))
    return PlannedRace(chosen, rules, race_plan, design, request.min_effect)


def race_header(race: PlannedRace) -> str:
    epochs, seeds = race.epochs, race.rules.seeds
    return (f"\nrace       top {len(race.chosen) - 1} candidate(s) and the paper's ramp, seeds "
            f"{seeds[0]}..{seeds[-1]} at most, {epochs} epoch{'s' if epochs != 1 else ''}, by "
            f"{race.plan.objective.key} (paired by seed)")


def write_race_tables(result: RaceResult, folder: Path) -> Path:
    """reeval.csv (one row per raced ramp) and race_rounds.csv (the rounds); the first's path."""
    result.table.to_csv(folder / "reeval.csv", index=False)
    result.history.to_csv(folder / "race_rounds.csv", index=False)
    return folder / "reeval.csv"


def race_summary(result: RaceResult, table: Path, interrupted: bool) -> str:
    """The race's table, where it was written, and its verdict (or how to finish it)."""
    end = INTERRUPTED_NOTE if interrupted else verdict_paragraph(result)
    return f"\n{format_race(result)}\n\nrace       {table} (rounds: race_rounds.csv)\n{end}"
