"""`rampsearch rank`: the leaderboard of a study, optionally re-evaluated with several seeds."""

from __future__ import annotations

import argparse
import dataclasses

from .. import study as study_lib
from ..errors import UserError
from ..leaderboard import format_table, leaderboard
from ..plan import add_ray_arguments, build_plan, check_resources, ray_options, stored_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rank", help="leaderboard of a study; --reeval-top K re-trains the leaders with seeds",
        description="Write results/<study>/leaderboard.csv and .parquet and print the top. "
                    "Trials stopped early are never ranked above fully trained ones. With "
                    "--reeval-top K, the top K candidates and the paper's ramp are re-trained "
                    "with --seeds S at a higher fidelity on Ray and ranked by their mean with "
                    "a 95%% interval.")
    study_lib.add_study_arguments(parser)
    parser.add_argument("--top", type=int, default=10, help="rows to print (10)")
    parser.add_argument("--reeval-top", type=int, metavar="K",
                        help="re-train the top K candidates and the paper's ramp")
    parser.add_argument("--seeds", type=int, default=3, metavar="S",
                        help="seeds per re-trained ramp (3)")
    parser.add_argument("--epochs", type=int, metavar="E",
                        help="epochs of the re-evaluation (default: twice the search's)")
    add_ray_arguments(parser)
    parser.set_defaults(handler=run)


def check_arguments(args: argparse.Namespace) -> None:
    """Every number and Ray flag, before the study is read or anything is written."""
    if args.top < 1:
        raise UserError(f"--top {args.top}: give at least 1 row to print.")
    if args.epochs is not None and args.epochs < 1:
        raise UserError(f"--epochs {args.epochs}: give at least 1 epoch of re-evaluation.")
    if args.reeval_top is not None and (args.reeval_top < 1 or args.seeds < 2):
        raise UserError("--reeval-top needs K >= 1 and --seeds S >= 2 (an interval needs two "
                        "seeds).")
    check_resources(vars(args))


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    location = study_lib.find_study(args.results, args.study)
    study = study_lib.load_study(location)
    options = stored_options(location)
    from search_spaces import load_space

    space = load_space(options["space"], base=options["base"])
    frame = leaderboard(study, space.base.depths)
    if frame.empty:
        raise UserError(f"study {location.name!r} has no trained trial yet; run "
                        f"`rampsearch run --resume --study {location.name}` first.")
    frame.to_csv(location.folder / "leaderboard.csv", index=False)
    frame.to_parquet(location.folder / "leaderboard.parquet", index=False)
    print(format_table(frame, limit=args.top))
    print(f"\nleaderboard  {location.folder / 'leaderboard.csv'} (.parquet)")
    if args.reeval_top is None:
        return 0
    if args.reeval_top < 1 or args.seeds < 2:
        raise UserError("--reeval-top needs K >= 1 and --seeds S >= 2 (an interval needs two "
                        "seeds).")
    return reevaluate(args, location, study, frame, options)


def reevaluate(args: argparse.Namespace, location: study_lib.StudyLocation, study, frame,
               options: dict) -> int:
    from ..proxy import ProxySettings, load_data_for
    from ..ranking import format_reeval, leaders, reeval_jobs, reeval_summary
    from ..search import execute

    proxy = ProxySettings.from_dict(options["proxy"])
    epochs = args.epochs or 2 * proxy.epochs
    proxy = dataclasses.replace(proxy, epochs=epochs)
    options = {**options, **ray_options(args), "trials": 0}
    plan = build_plan(options, proxy)
    study_lib.lock_study(location)  # a second driver on this study is refused
    chosen = leaders(frame, args.reeval_top)
    jobs = reeval_jobs(study, chosen, args.seeds, epochs)
    print(f"\nre-evaluating {len(chosen)} ramps x {args.seeds} seeds at {epochs} epochs "
          f"({len(jobs)} trainings left)")
    if jobs:
        data = load_data_for(options["data"], proxy)
        from ..progress import Progress

        progress = Progress(total_jobs=len(jobs), concurrency=plan.max_concurrent or 1,
                            depths=plan.space.base.depths, epochs=epochs)
        outcome = execute(study, plan, data, jobs, 0, progress)
        progress.finish()
        if outcome.interrupted:
            print("interrupted: finished re-evaluations are kept; run the same command again "
                  "to complete them.")
            return 130
    summary = reeval_summary(study, epochs)
    print()
    print(format_reeval(summary))
    summary.drop(columns=["scores"]).to_csv(location.folder / "reeval.csv", index=False)
    print(f"\nre-evaluation  {location.folder / 'reeval.csv'}")
    return 0
