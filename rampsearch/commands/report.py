"""`rampsearch report`: one self-contained HTML file with the study's plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import study as study_lib
from ..errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="write results/<study>/report.html",
        description="Write one self-contained HTML report (opens offline): top-1 against FLOPs "
                    "with the budget and the Pareto front, C_h/C per block of the leaders "
                    "beside the paper's ramp, optimisation history, learning curves, parameter "
                    "importances, re-evaluation intervals, and the proxy-against-reference "
                    "table and plot of a `rampsearch fidelity` measurement.")
    study_lib.add_study_arguments(parser)
    parser.add_argument("--out", type=Path, help="output file (default: results/<study>/"
                                                 "report.html)")
    parser.set_defaults(handler=run)


def write_report(location: study_lib.StudyLocation, out: Path | None = None) -> Path:
    from search_spaces import load_space

    from ..fidelity import FIDELITY_SCORES, fidelity_tables
    from ..leaderboard import leaderboard
    from ..plan import stored_options
    from ..ranking import stored_race
    from ..report import build_report

    study = study_lib.load_study(location)
    options = stored_options(location)
    space = load_space(options["space"], base=options["base"])
    frame = leaderboard(study, space.base.depths)
    fidelity = {score: fidelity_tables(study, space.base.depths, score)[:2]
                for score in FIDELITY_SCORES}
    fidelity = {score: pair for score, pair in fidelity.items() if not pair[0].empty}
    if frame.empty and not fidelity:
        raise UserError(f"study {location.name!r} has no trained trial yet; nothing to report.")
    budget_flops = study.user_attrs[study_lib.SETTINGS_ATTR]["budget_flops"]
    page, _ = build_report(study, frame, space.base.depths, budget_flops,
                           stored_race(study, frame),
                           fidelity=fidelity or None)
    path = out or location.folder / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def run(args: argparse.Namespace) -> int:
    location = study_lib.find_study(args.results, args.study)
    print(f"report  {write_report(location, args.out)}")
    return 0
