"""`rampsearch rank`: the leaderboard of a study, optionally re-evaluated with several seeds."""

from __future__ import annotations

import argparse
import contextlib

from ..errors import UserError
from ..options import (
    HelpFormatter,
    add_race_arguments,
    add_ray_arguments,
    add_study_arguments,
    check_race_arguments,
    race_request,
    ray_options,
)
from ..ranking.leaderboard import format_table, leaderboard
from ..study import storage as study_lib
from ..study.plan import build_plan, check_resources
from ..study.stored import open_existing_study
from ..training.proxy import ProxySettings

HELP = "leaderboard of a study; --reeval-top K races the leaders with seeds"
# argparse folds the lines of a description into paragraphs of its own width.
DESCRIPTION = """\
Write results/<study>/leaderboard.csv and .parquet and print the top, ranked by the study's
objective. Trials stopped early are never ranked above fully trained ones. With --reeval-top
K, the top K candidates and the paper's ramp are raced: each round gives every surviving
leader and the paper's ramp seeds the search never used (three, then one more a round), a
leader significantly worse than the best (seed-paired) is dropped, and the race ends when
the best is separated from the paper's ramp and the rest, or at --max-seeds. Rounds before
the last decide at 99.9% and the last at 95% (Haybittle-Peto), Bonferroni-corrected for K
leaders, so that looking once a round and racing several leaders keep false claims near 5%.
Each leader gets its paired difference to the paper's ramp with its interval and one word:
better or worse (the interval excludes 0), equivalent (within --margin by two one-sided
tests) or not separated. The race's design is stored when it starts: run the same command
again to finish an interrupted race; other settings are refused.
"""
FORMATTER = HelpFormatter  # "(default: X)" after an option's help


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study_arguments(parser)
    parser.add_argument("--top", type=int, default=10, help="rows to print")
    add_race_arguments(parser)
    add_ray_arguments(parser)


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
    plan = build_plan(options, ProxySettings.from_dict(options["proxy"]))
    study_lib.lock_study(location)  # a second driver on this study is refused
    from ..cluster.race_driver import run_race  # imports Ray
    from ..ranking.race_request import plan_race, race_header, race_summary

    race = plan_race(study, plan, frame, race_request(args))
    print(race_header(race), flush=True)
    with contextlib.ExitStack() as session:
        result, interrupted = run_race(study, race, session)
    print(race_summary(result, location.folder / "reeval.csv", interrupted))
    return 130 if interrupted else 0
