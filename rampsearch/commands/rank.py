"""`rampsearch rank`: the leaderboard of a study, optionally re-evaluated with several seeds."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses

from .. import study as study_lib
from ..errors import UserError
from ..leaderboard import format_table, leaderboard
from ..options import (
    HelpFormatter,
    add_race_arguments,
    add_ray_arguments,
    add_study_arguments,
    check_race_arguments,
    check_resources,
    open_existing_study,
    ray_options,
)
from ..plan import build_plan
from ..proxy import ProxySettings
from ..states import PAPER


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rank", help="leaderboard of a study; --reeval-top K races the leaders with seeds",
        description="Write results/<study>/leaderboard.csv and .parquet and print the top, "
                    "ranked by the study's objective. Trials stopped early are never ranked "
                    "above fully trained ones. With --reeval-top K, the top K candidates and "
                    "the paper's ramp are raced: each round gives every surviving leader and "
                    "the paper's ramp seeds the search never used (three, then one more a "
                    "round), a leader significantly worse than the best (seed-paired) is "
                    "dropped, and the race ends when the best is separated from the paper's "
                    "ramp and the rest, or at --max-seeds. Rounds before the last decide at "
                    "99.9% and the last at 95% (Haybittle-Peto), Bonferroni-corrected for K "
                    "leaders, so that looking once a round and racing several leaders keep "
                    "false claims near 5%. Each leader gets its paired difference to the "
                    "paper's ramp with its interval and one word: better or worse (the interval "
                    "excludes 0), equivalent (within --margin by two one-sided tests) or not "
                    "separated. The race's design is stored when it starts: run the same "
                    "command again to finish an interrupted race; other settings are refused.",
        formatter_class=HelpFormatter)
    add_study_arguments(parser)
    parser.add_argument("--top", type=int, default=10, help="rows to print")
    add_race_arguments(parser)
    add_ray_arguments(parser)
    parser.set_defaults(handler=run)


def check_arguments(args: argparse.Namespace) -> None:
    """Every number and Ray flag, before the study is read or anything is written."""
    if args.top < 1:
        raise UserError(f"--top {args.top}: give at least 1 row to print.")
    check_race_arguments(args)
    check_resources(vars(args))


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    opened = open_existing_study(args.results, args.study)
    location, study, options = opened.location, opened.study, opened.options
    frame = leaderboard(study, opened.space.base.depths)
    if frame.empty:
        raise UserError(f"study {location.name!r} has no trained trial yet; run "
                        f"`rampsearch run --resume --study {location.name}` first.")
    frame.to_csv(location.folder / "leaderboard.csv", index=False)
    frame.to_parquet(location.folder / "leaderboard.parquet", index=False)
    print(format_table(frame, limit=args.top))
    print(f"\nleaderboard  {location.folder / 'leaderboard.csv'} (.parquet)")
    if not args.reeval_top:
        return 0
    options = {**options, **ray_options(args), "trials": 0}
    proxy = ProxySettings.from_dict(options["proxy"])
    plan = build_plan(options, proxy)
    study_lib.lock_study(location)  # a second driver on this study is refused
    return race(args, plan, study, frame)


def race(args: argparse.Namespace, plan, study, frame, data=None) -> int:
    """Race the leaders (``args``: reeval_top, max_seeds, max_trainings, race_epochs), print
    the table and the verdict, write reeval.csv and race_rounds.csv. ``data``: the search's
    images when already loaded. Returns 130 when interrupted."""
    from ..race import RaceRules, race_seeds
    from ..ranking import (
        check_race_design,
        default_margin,
        format_race,
        leaders,
        race_design,
        race_rounds,
        store_race,
        verdict_paragraph,
    )
    from ..states import StudyAttr

    chosen = leaders(frame, args.reeval_top)
    if (chosen["role"] == PAPER).sum() == 0:
        raise UserError("the race needs the paper's ramp completed in the study; run "
                        f"`rampsearch run --resume --study {plan.location.name}` to train it.")
    if len(chosen) < 2:
        raise UserError("no completed candidate within the budget to race against the "
                        "paper's ramp yet; let the search train some first.")
    epochs = args.race_epochs or plan.proxy.epochs
    objective = plan.objective
    stored = study.user_attrs.get(StudyAttr.RACE)
    margin = args.margin if args.margin is not None else (
        stored["margin"] if stored and "margin" in stored else default_margin(frame, objective))
    rules = RaceRules(race_seeds(plan.settings.seed, args.max_seeds), args.max_trainings,
                      comparisons=len(chosen) - 1, margin=margin)
    design = race_design(chosen, rules, epochs, objective, args.reeval_top, args.max_seeds,
                         args.margin, args.min_effect)
    check_race_design(stored, design, plan.location.name)
    store_race(study, design)  # before any training: the design is fixed from here on
    proxy = dataclasses.replace(plan.proxy, epochs=epochs)
    race_plan = dataclasses.replace(plan, proxy=proxy)
    print(f"\nrace       top {len(chosen) - 1} candidate(s) and the paper's ramp, seeds "
          f"{rules.seeds[0]}..{rules.seeds[-1]} at most, {epochs} epoch{'s' if epochs != 1 else ''}, by {objective.key} "
          f"(paired by seed)", flush=True)

    ray_started = False

    def train(jobs) -> bool:
        nonlocal data, ray_started
        from ..progress import Progress
        from ..proxy import load_data_for
        from ..search import execute, ray_session  # imports Ray

        if data is None:
            data = load_data_for(plan.settings.data, proxy)
        # Ray starts with the first round that trains and stays up for the rest (a no-op
        # inside `run`, whose session is already up); a replayed race starts nothing.
        if not ray_started:
            ray_up.enter_context(ray_session(race_plan))
            ray_started = True
        progress = Progress(total_jobs=len(jobs), concurrency=plan.max_concurrent or 1,
                            depths=plan.space.base.depths, epochs=epochs, objective=objective)
        outcome = execute(study, race_plan, data, jobs, 0, progress)
        progress.finish()
        return outcome.interrupted

    with contextlib.ExitStack() as ray_up:
        result, interrupted = race_rounds(study, chosen, rules, epochs, objective, train,
                                          args.min_effect)
    print()
    print(format_race(result))
    folder = plan.location.folder
    result.table.to_csv(folder / "reeval.csv", index=False)
    result.history.to_csv(folder / "race_rounds.csv", index=False)
    print(f"\nrace       {folder / 'reeval.csv'} (rounds: race_rounds.csv)")
    if interrupted:
        print("interrupted: finished race trainings are kept; run the same command again to "
              "complete the race.")
        return 130
    print(verdict_paragraph(result))
    return 0
