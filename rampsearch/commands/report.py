"""`rampsearch report`: one self-contained HTML file with the study's plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import study as study_lib
from ..errors import UserError
from ..options import add_study_arguments, study_at
from ..states import StudyAttr


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="write results/<study>/report.html",
        description="Write one self-contained HTML report (opens offline): the objective "
                    "against FLOPs with the budget and the Pareto front, C_h/C per block of "
                    "the leaders beside the paper's ramp, optimisation history, learning "
                    "curves, parameter importances, the race against the paper's ramp with "
                    "its paired intervals per round and its verdict, and the "
                    "proxy-against-reference tables and plots of a `rampsearch fidelity` "
                    "measurement.")
    add_study_arguments(parser)
    parser.add_argument("--out", type=Path, help="output file (default: results/<study>/"
                                                 "report.html)")
    parser.set_defaults(handler=run)


def write_report(location: study_lib.StudyLocation, out: Path | None = None) -> Path:
    from ..fidelity import FIDELITY_SCORES, fidelity_tables
    from ..leaderboard import leaderboard
    from ..ranking import stored_race
    from ..report import build_report

    opened = study_at(location)
    study, space = opened.study, opened.space
    frame = leaderboard(study, space.base.depths)
    fidelity = {score: fidelity_tables(study, space.base.depths, score)[:2]
                for score in FIDELITY_SCORES}
    fidelity = {score: pair for score, pair in fidelity.items() if not pair[0].empty}
    if frame.empty and not fidelity:
        raise UserError(f"study {location.name!r} has no trained trial yet; nothing to report.")
    budget_flops = study.user_attrs[StudyAttr.SETTINGS]["budget_flops"]
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
