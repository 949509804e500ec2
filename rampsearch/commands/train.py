"""`rampsearch train`: the full ImageNet recipe on an exported model (see rampsearch.train)."""

from __future__ import annotations

import argparse

from ..recipe import add_train_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train an exported model with the paper's ImageNet recipe",
        description="Train the model of a train.yaml (written by `rampsearch export`) with the "
                    "paper's recipe on an ImageFolder: timm's data pipeline, RandAugment, "
                    "Mixup/CutMix, random erasing, AdamW, cosine schedule, EMA. One process "
                    "here; for several GPUs run `torchrun --nproc_per_node N -m "
                    "rampsearch.train CONFIG --data DIR`.")
    add_train_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # The trainer (DDP, timm's data pipeline) loads only when this command runs.
    from ..train import run_from_args
    return run_from_args(args)
