"""From options (flags, a --config file, a stored study) to a validated search plan.

Everything a user can get wrong is checked here, before Ray starts or anything trains.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import iformer
from search_spaces import (
    Budget,
    BudgetCheck,
    SearchSpace,
    base_for,
    check_budget,
    load_space,
    parse_budget,
    space_names,
)

from ..errors import UserError
from ..training.proxy import ProxySettings
from . import storage as study_lib
from .objective import DEFAULT_OBJECTIVE, Objective, get_objective


@dataclass
class SearchPlan:
    """Everything a search (or a re-evaluation) needs, resolved and validated."""

    location: study_lib.StudyLocation
    settings: study_lib.StudySettings
    space: SearchSpace
    budget: Budget
    check: BudgetCheck
    proxy: ProxySettings
    trials: int
    cpus_per_trial: float
    gpus_per_trial: float
    max_concurrent: int | None   # None: as many as the Ray cluster's CPUs allow
    ray_address: str | None
    worker_retries: int = 2      # retries of a job whose Ray worker died, per run

    @property
    def objective(self) -> Objective:
        """The score the sampler optimises and the leaderboard ranks by."""
        return self.settings.objective


def budget_resolution(value: Any) -> tuple[int, int]:
    """--budget-resolution (N or HxW, from the command line or a --config file; a stored
    study's is already a (height, width) pair) as (height, width)."""
    if isinstance(value, tuple):
        return value
    return iformer.parse_image_size(value, "--budget-resolution")


def check_resources(options: dict[str, Any]) -> None:
    """The Ray flags, checked before anything starts (from the command line or a --config
    file, so of any type). What the cluster has is checked once connected
    (``search.check_cluster``)."""
    cpus = number(options["cpus_per_trial"], "--cpus-per-trial")
    gpus = number(options["gpus_per_trial"], "--gpus-per-trial")
    if not cpus > 0 or not math.isfinite(cpus):
        raise UserError(f"--cpus-per-trial must be positive, e.g. 1 (got {cpus:g}); Ray "
                        f"reserves that many CPUs for every trial.")
    if not gpus >= 0 or not math.isfinite(gpus):
        raise UserError(f"--gpus-per-trial must be 0 or more, e.g. 1 or 0.5 (got {gpus:g}).")
    concurrent = options.get("max_concurrent")
    if concurrent is not None and whole_number(concurrent, "--max-concurrent") < 1:
        raise UserError(f"--max-concurrent {concurrent}: give at least 1.")
    retries = options.get("worker_retries")
    if retries is not None and whole_number(retries, "--worker-retries") < 0:
        raise UserError(f"--worker-retries {retries}: give 0 (never retry) or more.")


def number(value: Any, flag: str) -> float:
    """A number from the command line or a --config file, or a UserError naming ``flag``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UserError(f"{flag} must be a number, got {value!r}.")
    try:
        return float(value)
    except ValueError:
        raise UserError(f"{flag} must be a number, got {value!r}.") from None


def whole_number(value: Any, flag: str) -> int:
    result = number(value, flag)
    if not result.is_integer():
        raise UserError(f"{flag} must be a whole number, got {value!r}.")
    return int(result)


def check_results_folder(results: Path) -> None:
    """Refuse a --results folder that cannot be written, without creating it: a throwaway
    folder is made and removed in its nearest existing parent."""
    existing = results
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    problem = None
    if not existing.is_dir():
        problem = f"{existing} is not a folder"
    else:
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".rampsearch-", dir=existing))
        except OSError as exc:
            problem = f"nothing can be created in {existing} ({exc.strerror})"
    if problem:
        raise UserError(f"cannot write results to --results {results}: {problem}. Pass "
                        f"--results DIR inside a folder you can write to.")


def resolve_space(options: dict[str, Any]) -> tuple[Budget, SearchSpace, BudgetCheck]:
    """The budget (a Budget already, or the text of --budget, at --budget-resolution), the
    space and whether the budget binds in it."""
    budget = options["budget"]
    img_size = budget_resolution(options["budget_resolution"])
    if isinstance(budget, Budget):
        # A stored study's budget: a --budget-resolution given on resume replaces its size
        # (and is then refused as other settings, as a new --budget would be).
        budget = dataclasses.replace(budget, img_size=img_size)
    else:
        budget = parse_budget(str(budget), img_size=img_size)
    family = options["space"] if options["space"] in space_names() else "monotone"
    base = base_for(options["base"], budget, family=family)
    space = load_space(options["space"], base=base)
    return budget, space, check_budget(space, budget)


def default_study_name(space: SearchSpace, budget: Budget) -> str:
    gflops = f"{budget.flops / 1e9:.2f}".rstrip("0").rstrip(".")
    family = Path(space.name).stem
    return (f"{space.base_name.removeprefix('iformer_')}-{family}-{gflops}G-"
            f"{time.strftime('%Y%m%d-%H%M%S')}")


def ray_address(options: dict[str, Any]) -> str | None:
    return options.get("ray_address") or os.environ.get("RAY_ADDRESS") or None


def check_seed(value: Any) -> None:
    if whole_number(value, "--seed") not in range(2**32):
        raise UserError(f"--seed {value}: give a whole number from 0 to 2**32 - 1 (numpy's "
                        f"range), e.g. 0.")


def plan_objective(value: Objective | str | None) -> Objective:
    """The objective option: a stored study's Objective, a flag's name, or none (the
    default)."""
    if isinstance(value, Objective):
        return value
    return get_objective(value or DEFAULT_OBJECTIVE)


def build_plan(options: dict[str, Any], proxy: ProxySettings) -> SearchPlan:
    check_resources(options)
    check_seed(options["seed"])
    budget, space, check = resolve_space(options)
    results = Path(options["results"])
    check_results_folder(results)
    name = study_lib.check_study_name(options["study"] or default_study_name(space, budget))
    folder = results / name
    location = study_lib.StudyLocation(
        name, options["storage"] or study_lib.default_storage_url(folder), results)
    study_lib.check_storage_url(location.storage_url)
    base = options["base"] or space.base_name
    settings = study_lib.StudySettings(
        base=str(base), space=str(options["space"]), budget=budget, data=str(options["data"]),
        proxy=proxy.to_dict(), sampler=options["sampler"], seed=int(options["seed"]),
        scheduler=options["scheduler"], objective=plan_objective(options.get("objective")),
        supernet=options.get("supernet"))
    cpus_per_trial = float(options["cpus_per_trial"])
    address = ray_address(options)
    if options["max_concurrent"]:
        concurrency = int(options["max_concurrent"])
    elif address:
        concurrency = None  # known once connected to the cluster
    else:
        concurrency = max(1, int((os.cpu_count() or 1) // cpus_per_trial))
    return SearchPlan(location=location, settings=settings, space=space, budget=budget,
                      check=check, proxy=proxy, trials=int(options["trials"]),
                      cpus_per_trial=cpus_per_trial,
                      gpus_per_trial=float(options["gpus_per_trial"]),
                      max_concurrent=concurrency, ray_address=address,
                      worker_retries=2 if options.get("worker_retries") is None
                      else int(options["worker_retries"]))
