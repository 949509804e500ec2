"""`rampsearch report`: one self-contained HTML file with the study's plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..options import add_study_arguments
from ..study import storage as study_lib

HELP = "write results/<study>/report.html"
DESCRIPTION = ("Write one self-contained HTML report (opens offline): the objective "
               "against FLOPs with the budget and the Pareto front, C_h/C per block of "
               "the leaders beside the paper's ramp, optimisation history, learning "
               "curves, parameter importances, the race against the paper's ramp with "
               "its paired intervals per round and its verdict, and the "
               "proxy-against-reference tables and plots of a `rampsearch fidelity` "
               "measurement.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study_arguments(parser)
    parser.add_argument("--out", type=Path, help="output file (default: results/<study>/"
                                                 "report.html)")


def run(args: argparse.Namespace) -> int:
    location = study_lib.find_study(args.results, args.study)
    from ..reporting.report_file import write_report

    print(f"report  {write_report(location, args.out)}")
    return 0
