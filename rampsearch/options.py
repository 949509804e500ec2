"""Options that several commands share, declared and checked once.

Each ``add_*`` function adds one group of flags, with their built-in defaults, to a command's
parser; its ``check_*`` partner refuses values out of range with one sentence that names the
fix; the ``*_from_args`` functions turn the parsed flags into the library's settings. Only
this module and the commands know argparse. A command that fills options from a file or a stored study (``run``) lists those as
layers of defaults that the command line sets with ``parser.set_defaults`` before parsing
again (``rampsearch.cli.parse_args``), as timm's ``train.py`` does with its ``--config``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path
from typing import Any

from .errors import UserError
from .ranking.race_request import RaceRequest
from .training.fields import field_values
from .training.proxy import MIN_RESOLUTION, ProxySettings
from .training.recipe import TrainRecipe, load_recipe

RAY_DEFAULTS: dict[str, Any] = {"cpus_per_trial": 1.0, "gpus_per_trial": 0.0,
                                "max_concurrent": None, "ray_address": None,
                                "worker_retries": 2}
# The race `rampsearch run` ends with; `rank` races only when asked (--reeval-top K). One
# leader and up to 6 seeds: each round's 2 trainings fill 2 cores, and, simulated
# (benchmarks/bench_race.py), it claims a difference between equal ramps in about 5% of races
# while finding a real one of 2 noise standard deviations in about 80%.
RACE_DEFAULTS: dict[str, Any] = {"reeval_top": 1, "max_seeds": 6, "max_trainings": None,
                                 "race_epochs": None, "margin": None, "min_effect": None}
MIN_RACE_SEEDS = 3  # the race's first look (race.MIN_SEEDS)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to an option's help only when X is a value: an option without
    one (None) says what happens instead in its own help, and an on/off flag (--no-train)
    takes no value, so "(default: True)" would only read as if it were on."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.nargs == 0 or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    """--study and --results: how every command after `run` finds a study."""
    parser.add_argument("--study", help="study name (default: the latest under --results)")
    parser.add_argument("--results", default="results", type=Path,
                        help="folder the studies were written to (default: results)")


def add_budget_resolution(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--budget-resolution", default="224", metavar="N|HxW",
                        help="input size the FLOPs budget is counted at")


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    """--cpus-per-trial, --gpus-per-trial, --max-concurrent, --ray-address, --worker-retries."""
    parser.add_argument("--cpus-per-trial", type=float, default=RAY_DEFAULTS["cpus_per_trial"],
                        help="CPUs Ray reserves per trial")
    parser.add_argument("--gpus-per-trial", type=float, default=RAY_DEFAULTS["gpus_per_trial"],
                        help="GPUs Ray reserves per trial")
    parser.add_argument("--max-concurrent", type=int,
                        help="trials at once (default: all that the CPUs allow)")
    parser.add_argument("--ray-address",
                        help="existing Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--worker-retries", type=int, default=RAY_DEFAULTS["worker_retries"],
                        help="times a trial whose Ray worker died (preemption, OOM kill, node "
                             "loss) is trained again in the same run")


def ray_options(args: argparse.Namespace) -> dict[str, Any]:
    """The flags of :func:`add_ray_arguments`, as options for ``plan.build_plan``."""
    return {key: getattr(args, key) for key in RAY_DEFAULTS}


def add_race_arguments(parser: argparse.ArgumentParser | Any, reeval_top: int = 0) -> None:
    """The race's flags (`rank` and `run`); ``reeval_top``: leaders raced by default."""
    parser.add_argument("--reeval-top", type=int, metavar="K", default=reeval_top,
                        help="race the top K candidates against the paper's ramp; 0: no race")
    parser.add_argument("--max-seeds", type=int, metavar="S", default=RACE_DEFAULTS["max_seeds"],
                        help="most seeds per raced ramp")
    parser.add_argument("--max-trainings", type=int, metavar="N",
                        help="most race trainings in all (default: no limit but --max-seeds)")
    parser.add_argument("--race-epochs", type=int, metavar="E",
                        help="epochs of each race training (default: the search's)")
    parser.add_argument("--margin", type=float, metavar="D",
                        help="equivalence margin in the objective's units: a leader is called "
                             "equivalent to the paper's ramp when two one-sided tests place "
                             "the difference within ±D (default: half the standard deviation "
                             "of the search's stand-alone scores; none after a one-shot "
                             "search, whose supernet scores are on another scale)")
    parser.add_argument("--min-effect", type=float, metavar="D",
                        help="smallest difference worth finding, in the objective's units: "
                             "sizes the new race that a 'not separated' verdict names (default:"
                             " one noise standard deviation of a training, measured by the "
                             "race)")


def race_request(args: argparse.Namespace) -> RaceRequest:
    """The flags of :func:`add_race_arguments` as the race's request."""
    return RaceRequest(leaders=args.reeval_top, max_seeds=args.max_seeds,
                       max_trainings=args.max_trainings, epochs=args.race_epochs,
                       margin=args.margin, min_effect=args.min_effect)


def check_race_arguments(args: argparse.Namespace) -> None:
    if args.reeval_top is not None and args.reeval_top < 0:
        raise UserError(f"--reeval-top {args.reeval_top}: give 0 (no race) or more leaders.")
    if args.max_seeds is not None and args.max_seeds < MIN_RACE_SEEDS:
        raise UserError(f"--max-seeds {args.max_seeds}: give at least {MIN_RACE_SEEDS} (the "
                        f"race's first look is at {MIN_RACE_SEEDS} paired seeds).")
    if args.max_trainings is not None and args.max_trainings < 1:
        raise UserError(f"--max-trainings {args.max_trainings}: give at least 1.")
    if args.race_epochs is not None and args.race_epochs < 1:
        raise UserError(f"--race-epochs {args.race_epochs}: give at least 1.")
    for flag, value in (("--margin", args.margin), ("--min-effect", args.min_effect)):
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value <= 0):
            raise UserError(f"{flag} {value}: give a positive number in the objective's "
                            f"units, e.g. 0.01 for validation loss or 0.3 for top-1 %.")


# The proxy settings a flag can override, with what the flag's help says of each.
PROXY_FLAGS = {
    "width": "width multiplier of head_dim",
    "resolution": f"image side in px, >= {MIN_RESOLUTION}",
    "epochs": "epochs per trial",
    "train_samples": "training images per trial",
    "val_samples": "validation images each trial is scored on",
    "batch_size": "batch size",
    "lr": "peak AdamW learning rate",
}


def add_proxy_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that override :class:`ProxySettings` (all default to None: keep the base)."""
    group = parser.add_argument_group("proxy training (defaults: ProxySettings)")
    defaults = ProxySettings()
    for name, text in PROXY_FLAGS.items():
        value = getattr(defaults, name)
        group.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=None,
                           help=f"{text} (default {value})")


def settings_from_args(args: argparse.Namespace,
                       base: ProxySettings | None = None) -> ProxySettings:
    """``base`` (default: ProxySettings()) with every flag the user gave applied, validated
    (a flag's value may come from a --config file, so of any type)."""
    overrides = {name: getattr(args, name) for name in PROXY_FLAGS
                 if getattr(args, name, None) is not None}
    settings = dataclasses.replace(base or ProxySettings(),
                                   **field_values(ProxySettings, overrides, "proxy setting"))
    settings.validate()
    return settings


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, metavar="CONFIG",
                        help="train.yaml written by `rampsearch export` (or a model config, "
                             "trained with the paper's recipe)")
    parser.add_argument("--data", type=Path, required=True, metavar="DIR",
                        help="ImageFolder root with train/<class>/ and val/<class>/")
    parser.add_argument("--output", type=Path, metavar="DIR",
                        help="where checkpoints and metrics.csv go (default: train/ beside CONFIG)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --output from its last.pth")
    parser.add_argument("--epochs", type=int, metavar="N", help="override the recipe's epochs")
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help="override the per-process batch size")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="data loading processes per training process")
    parser.add_argument("--init", metavar="released|PATH",
                        help="initial weights: the released iFormer checkpoint (the paper's "
                             "ramp only) or a weights file")


def recipe_from_args(args: argparse.Namespace) -> TrainRecipe:
    recipe = load_recipe(args.config)
    overrides = {name: getattr(args, name) for name in ("epochs", "batch_size", "workers")
                 if getattr(args, name) is not None}
    if overrides:
        recipe = dataclasses.replace(recipe, **overrides)
        recipe.validate(source="the command line")
    return recipe
