"""`rampsearch train`: the full ImageNet recipe on an exported model (the trainer:
``rampsearch.training.trainer``; under torchrun: ``python -m rampsearch.train``)."""

from __future__ import annotations

import argparse
import os
import sys

from ..options import add_train_arguments, recipe_from_args

HELP = "train an exported model with the paper's ImageNet recipe"
DESCRIPTION = ("Train the model of a train.yaml (written by `rampsearch export`) with the "
               "paper's recipe on an ImageFolder: timm's data pipeline, RandAugment, "
               "Mixup/CutMix, random erasing, AdamW, cosine schedule, EMA. One process "
               "here; for several GPUs run `torchrun --nproc_per_node N -m "
               "rampsearch.train CONFIG --data DIR`.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_train_arguments(parser)


def run(args: argparse.Namespace) -> int:
    # The trainer (DDP, timm's data pipeline) loads only when this command runs.
    from ..training.trainer import train

    recipe = recipe_from_args(args)
    output = args.output or args.config.resolve().parent / "train"
    summary = train(recipe, args.data, output, resume=args.resume, init=args.init)
    if summary.status == "diverged":
        print(f"rampsearch: training diverged: {summary.reason}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) == 0:
        epochs = f"{summary.epochs_done} epoch{'s' if summary.epochs_done != 1 else ''}"
        print(f"done: {epochs}; best top-1 {summary.best_top1:.2f} at epoch "
              f"{summary.best_epoch}; checkpoints and metrics.csv in {summary.output}")
    return 0
