"""A study written by `rampsearch run`, reopened by a later command: its stored options and
its search space."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import storage as study_lib


def stored_options(location: study_lib.StudyLocation) -> dict[str, Any]:
    """The options a study was started with, from its run.json, typed as they are held in
    memory (a Budget, an Objective): the flags given again replace them, and nothing is
    turned back into text to be parsed again."""
    run_file = location.folder / study_lib.RUN_FILE
    payload = study_lib.read_run_file(run_file)
    settings = study_lib.StudySettings.from_dict(payload["settings"])
    return {
        "base": settings.base, "space": settings.space, "data": settings.data,
        "sampler": settings.sampler, "seed": settings.seed, "scheduler": settings.scheduler,
        "budget": settings.budget, "budget_resolution": settings.budget.img_size,
        "trials": payload["settings"].get("trials"), "study": location.name,
        "storage": study_lib.stored_storage_url(payload, run_file),
        "results": str(location.results_dir), "proxy": settings.proxy,
        "objective": settings.objective, "supernet": settings.supernet,
    }


@dataclass(frozen=True)
class ExistingStudy:
    """A study written by `rampsearch run`, opened for a later command."""

    location: study_lib.StudyLocation
    study: Any           # optuna.Study
    options: dict[str, Any]
    space: Any           # search_spaces.SearchSpace


def open_existing_study(results: Path, name: str | None) -> ExistingStudy:
    """Find the study (by name or the latest) and open it (:func:`study_at`)."""
    return study_at(study_lib.find_study(results, name))


def study_at(location: study_lib.StudyLocation) -> ExistingStudy:
    """Load the study, read its stored options and load its search space."""
    from search_spaces import load_space

    study = study_lib.load_study(location)
    options = stored_options(location)
    return ExistingStudy(location, study, options,
                         load_space(options["space"], base=options["base"]))
