"""Optuna samplers for ramp search.

The FLOPs constraint reaches them through each trial's own constraint value
(``Trial.set_constraint``, set by the search space and the searcher), which Optuna 5's TPE,
NSGA-II and GP samplers read; ``constraints_func`` is deprecated there.
"""

from __future__ import annotations

import warnings

import optuna

from ..errors import UserError

SAMPLERS = ("tpe", "nsga2", "random", "gp", "cmaes")


def searches_flops(sampler: str) -> bool:
    """Whether the sampler searches the objective against FLOPs as two objectives (nsga2);
    the others optimise the objective alone."""
    return sampler == "nsga2"


def make_sampler(name: str, seed: int, trials: int, family: str,
                 cheap_trials: bool = False) -> optuna.samplers.BaseSampler:
    """The sampler ``--sampler`` names, sized for ``trials``. ``cheap_trials`` (a one-shot
    search, thousands of supernet scores): TPE explores more (see ``_sampler``)."""
    if name not in SAMPLERS:
        raise UserError(f"--sampler {name!r} is not known; choose one of {', '.join(SAMPLERS)}.")
    # Samplers flagged experimental in Optuna (multivariate TPE, GP) are what we want here;
    # they warn once, when they are made.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _sampler(name, seed, trials, family, cheap_trials)


def _sampler(name: str, seed: int, trials: int, family: str,
             cheap_trials: bool = False) -> optuna.samplers.BaseSampler:
    if name == "tpe" and cheap_trials:
        # Thousands of cheap trials: TPE's default (its best of 24 candidates from the good
        # trials' density) folds onto a few ramps within the budget; measured on the monotone
        # space at 4.8 GFLOPs, 107 distinct ramps in 1,000 proposals. Drawing one candidate
        # (a sample of that density) after a tenth of the trials at random: 474 of 1,000.
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True, n_ei_candidates=1,
            n_startup_trials=max(10, trials // 10))
    if name == "tpe":
        # Joint (multivariate, grouped) TPE: neighbouring blocks' head counts interact.
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True,
            n_startup_trials=max(4, min(10, trials // 3)))
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(
            seed=seed, population_size=max(4, min(50, trials // 2)))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=max(4, min(10, trials // 3)))
    if family != "smooth":
        raise UserError(f"--sampler cmaes needs a continuous space, and space family {family!r} "
                        f"is integer-valued; use --space smooth with cmaes, or --sampler tpe.")
    return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=1)
