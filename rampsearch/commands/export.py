"""`rampsearch export`: the model and training recipe of one trained ramp."""

from __future__ import annotations

import argparse
from pathlib import Path

import iformer

from ..options import add_study_arguments
from ..reporting.export import export_trial
from ..study import storage as study_lib

HELP = "write model.yaml, train.yaml and a README for one trial"
DESCRIPTION = ("Export a trial's ramp as the full-size ImageNet model (model.yaml), the "
               "paper's training recipe in timm train.py's format (train.yaml) and a "
               "README with the commands to train it.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study_arguments(parser)
    parser.add_argument("--trial", default="best", metavar="best|N",
                        help="'best' (the leader the race's verdict names when the study "
                             "raced its leaders, else the best proxy score by the study's objective "
                             "within the budget) or a trial number")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="output folder (default: results/<study>/export)")


def run(args: argparse.Namespace) -> int:
    location = study_lib.find_study(args.results, args.study)
    exported = export_trial(location, args.trial, args.out)
    config = exported.config
    top1 = f"{exported.top1:.2f}%" if exported.top1 is not None else "-"
    print(f"exported trial {exported.trial} ({exported.role}, proxy top-1 {top1}) of study "
          f"{location.name}: {iformer.count_flops(config, config.input_size) / 1e9:.3f} GFLOPs, "
          f"{iformer.count_params(config) / 1e6:.2f} M params at {config.input_size[0]} px")
    for path in exported.files:
        print(f"  {path}")
    print(f"next: rampsearch train {exported.files[1]} --data /path/to/imagenet")
    return 0
