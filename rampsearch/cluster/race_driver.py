"""The race on Ray: each round trains the next seeds of the leaders still in it and of the
paper's ramp, until the rules end it (``rampsearch.ranking``: what a round decides)."""

from __future__ import annotations

import contextlib

import optuna

from ..data import ProxyData
from ..ranking.race_request import PlannedRace, write_race_tables
from ..ranking.race_results import RaceResult, race_rounds, store_race
from ..study.trials import FixedJob
from ..training.proxy import load_data_for
from .jobs import train_jobs


def run_race(study: optuna.Study, race: PlannedRace, session: contextlib.ExitStack,
             data: ProxyData | None = None) -> tuple[RaceResult, bool]:
    """Store the race's design, race to the end (or resume an interrupted race) and write
    its tables. ``data``: the search's images when already loaded, else loaded before the
    first round that trains. Returns the result and whether it was interrupted."""
    plan = race.plan

    def train(jobs: list[FixedJob]) -> bool:
        nonlocal data
        if data is None:
            data = load_data_for(plan.settings.data, plan.proxy)
        return train_jobs(study, plan, jobs, data, session).interrupted

    store_race(study, race.design)  # before any training: the design is fixed from here on
    result, interrupted = race_rounds(study, race.chosen, race.rules, race.epochs,
                                      plan.objective, train, race.min_effect)
    write_race_tables(result, plan.location.folder)
    return result, interrupted
