"""The Optuna study of a search: where it lives, what it promised, what is left to do.

The study storage is the single source of truth. Ray only executes trials; every state change
of an Optuna trial is written by the driver, so a run killed at any moment leaves a storage
that the next ``--resume`` can read: finished trials are kept as they are, trials that were
running are marked failed (``end_reason = interrupted``) and their ramps queued again.
The keys of trial and study attributes are ``Attr`` and ``StudyAttr`` (``rampsearch.states``).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from search_spaces import Budget

from ..attributes import INTERRUPTED, Attr, Role, Status, StudyAttr
from ..errors import UserError
from .objective import DEFAULT_OBJECTIVE, Objective, get_objective, objective_of
from .samplers import searches_flops

LOCK_FILE = "driver.lock"      # results/<study>/driver.lock: held by the driver training it
RUN_FILE = "run.json"          # results/<study>/run.json: where the study's storage is

# Settings that may change between a run and its --resume without changing what is measured.
RESUMABLE_KEYS = ("trials",)


@dataclass
class StudySettings:
    """What a study measures. Two runs may share a study only if these agree.

    In memory the budget and the objective are typed; :meth:`to_dict` and :meth:`from_dict`
    convert them at the storage boundary, where run.json and the study's user attributes keep
    the keys they always had (``budget_flops``, ``budget_img_size``, ``objectives``)."""

    base: str
    space: str
    budget: Budget
    data: str
    proxy: dict[str, Any]
    sampler: str
    seed: int
    scheduler: str
    # The score optimised and ranked by.
    objective: Objective = field(default_factory=lambda: get_objective(DEFAULT_OBJECTIVE))
    # The one-shot strategy's SupernetSettings (as a dict); None: every candidate is trained
    # stand-alone. Stored only when set, so a stand-alone study's settings read as before.
    supernet: dict[str, Any] | None = None

    @property
    def strategy(self) -> str:
        """How candidates are scored: "standalone" (each trained) or "oneshot" (by a
        supernet's subnets)."""
        return "standalone" if self.supernet is None else "oneshot"

    @property
    def directions(self) -> list[str]:
        """The study's Optuna directions: the objective's, then FLOPs' for a sampler that
        trades the objective off against FLOPs."""
        return [self.objective.direction] + (["minimize"] if searches_flops(self.sampler) else [])

    def to_dict(self) -> dict[str, Any]:
        # The stored list names every objective of the study; "gflops" is the second one.
        objectives = [self.objective.key] + (["gflops"] if searches_flops(self.sampler) else [])
        return {"base": self.base, "space": self.space, "budget_flops": self.budget.flops,
                "budget_img_size": list(self.budget.img_size), "data": self.data,
                "proxy": self.proxy, "sampler": self.sampler, "seed": self.seed,
                "scheduler": self.scheduler, "objectives": objectives,
                **({} if self.supernet is None else {"supernet": self.supernet})}

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> StudySettings:
        """The settings as :meth:`to_dict` stored them; a study made before the objective was
        a setting holds no objectives and optimised top-1."""
        height, width = stored["budget_img_size"]
        return cls(base=stored["base"], space=stored["space"],
                   budget=Budget(int(stored["budget_flops"]), (int(height), int(width))),
                   data=stored["data"], proxy=dict(stored["proxy"]), sampler=stored["sampler"],
                   seed=stored["seed"], scheduler=stored["scheduler"],
                   objective=objective_of(stored.get("objectives")),
                   supernet=None if stored.get("supernet") is None else dict(stored["supernet"]))


@dataclass(frozen=True)
class StudyLocation:
    name: str
    storage_url: str
    results_dir: Path

    @property
    def folder(self) -> Path:
        return self.results_dir / self.name


_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_study_name(name: str) -> str:
    if not _NAME_PATTERN.match(name):
        raise UserError(f"study name {name!r} is not usable as a folder name; use letters, "
                        f"digits, '.', '_' and '-' (at most 100 characters).")
    return name


def check_storage_url(url: str) -> None:
    """Refuse a --storage that is neither an RDB URL SQLAlchemy can load a driver for nor a
    journal file path (ending in .log, as in Optuna's examples, or a journal that exists),
    before anything is created."""
    if "://" not in url:
        if not url.endswith(".log") and not Path(url).is_file():
            raise UserError(f"--storage {url} is neither an Optuna RDB URL (sqlite:///path/"
                            f"study.db, postgresql://user@host/db) nor a journal file (a path "
                            f"ending in .log); give one of those, or leave --storage out for "
                            f"results/<study>/study.db.")
        return
    from sqlalchemy.engine import make_url

    try:
        make_url(url).get_dialect()
    except Exception as exc:  # ArgumentError, NoSuchModuleError, ImportError of a driver
        raise UserError(f"cannot open the study storage {url!r}: {exc.__class__.__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}. Give an Optuna RDB "
                        f"URL such as sqlite:///results/my-study/study.db, or a journal file "
                        f"path ending in .log.") from None


def lock_study(location: StudyLocation) -> None:
    """Refuse a second driver on this study: hold ``results/<study>/driver.lock`` (fcntl.flock)
    until this process exits. A second driver would mark the first one's running trials as
    interrupted and train the same missing ramps twice. The kernel releases the lock when the
    process ends, however it ends, so a killed driver never leaves a stale lock behind."""
    location.folder.mkdir(parents=True, exist_ok=True)
    path = location.folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise UserError(f"study {location.name!r} is being trained by another rampsearch "
                        f"driver ({holder}); wait for it to end, or stop it (Ctrl-C) and run "
                        f"this command again: two drivers on one study are refused.") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
    # fd is deliberately left open: the lock lasts as long as this process.


def default_storage_url(folder: Path) -> str:
    return f"sqlite:///{(folder / 'study.db').resolve()}"


def open_storage(url: str) -> BaseStorage:
    """An Optuna RDB storage from a URL, or a journal storage from a file path."""
    check_storage_url(url)
    if "://" not in url:
        path = Path(url)
        if path.is_dir():
            raise UserError(f"--storage {url} is a folder; give an RDB URL "
                            f"(sqlite:///path/study.db, postgresql://...) or a journal file path.")
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    file = storage_file(url)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
    try:
        # A generous SQLite timeout: the dashboard reads while the driver writes.
        kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
        return RDBStorage(url, engine_kwargs=kwargs)
    except Exception as exc:  # SQLAlchemy raises many types for a bad URL or an absent driver
        raise UserError(f"cannot open the study storage {url!r}: {exc.__class__.__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}. Give an Optuna RDB URL "
                        f"such as sqlite:///results/my-study/study.db, or a journal file path."
                        ) from None


def write_run_file(location: StudyLocation, settings: StudySettings, trials: int) -> None:
    """results/<study>/run.json: how later commands find the study, and what it was asked."""
    location.folder.mkdir(parents=True, exist_ok=True)
    # The default storage (study.db beside run.json) is written as null, so that a study
    # folder that is moved, copied to another machine or checked in still finds its storage.
    beside = location.storage_url == default_storage_url(location.folder)
    payload = {"study": location.name, "storage": None if beside else location.storage_url,
               "settings": {**settings.to_dict(), "trials": trials}}
    (location.folder / RUN_FILE).write_text(json.dumps(payload, indent=2))


def find_study(results_dir: Path, name: str | None) -> StudyLocation:
    """A study written by `rampsearch run` under ``results_dir``: by name, or the latest."""
    if name is not None:
        run_file = results_dir / check_study_name(name) / RUN_FILE
        if not run_file.is_file():
            known = ", ".join(sorted(p.parent.name for p in results_dir.glob(f"*/{RUN_FILE}")))
            raise UserError(f"no study {name!r} under {results_dir}/ (known: {known or 'none'}). "
                            f"Start one with `rampsearch run --budget 4.8GFLOPs --study {name}`, "
                            f"or pass --results DIR where it was written.")
    else:
        runs = sorted(results_dir.glob(f"*/{RUN_FILE}"), key=lambda p: p.stat().st_mtime)
        if not runs:
            raise UserError(f"no study under {results_dir}/ yet. Start one with "
                            f"`rampsearch run --budget 4.8GFLOPs`, or pass --results DIR.")
        run_file = runs[-1]
    payload = read_run_file(run_file)
    return StudyLocation(payload["study"], stored_storage_url(payload, run_file), results_dir)


def stored_storage_url(payload: dict[str, Any], run_file: Path) -> str:
    """The storage a run file names; null means the study.db beside it."""
    return payload.get("storage") or default_storage_url(run_file.parent)


def read_run_file(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is unreadable ({exc}); it is written by `rampsearch run`, "
                        f"run that again for this study.") from None


def load_study(location: StudyLocation) -> optuna.Study:
    try:
        return optuna.load_study(study_name=location.name,
                                 storage=open_storage(location.storage_url))
    except KeyError:
        raise UserError(f"the storage {location.storage_url} holds no study named "
                        f"{location.name!r}.") from None


def create_or_check_study(location: StudyLocation, settings: StudySettings,
                          sampler: optuna.samplers.BaseSampler, resume: bool) -> optuna.Study:
    """Create the study, or reopen it for --resume after checking it measures the same thing."""
    storage = open_storage(location.storage_url)
    if check_start(storage, location, settings, resume):
        return optuna.load_study(study_name=location.name, storage=storage, sampler=sampler)
    directions = settings.directions
    study = optuna.create_study(study_name=location.name, storage=storage, sampler=sampler,
                                directions=directions)
    study.set_user_attr(StudyAttr.SETTINGS, settings.to_dict())
    with warnings.catch_warnings():  # experimental in Optuna, and exactly what the UI needs
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # The dashboard labels the objective with these names.
        study.set_metric_names([settings.objective.key]
                               + (["GFLOPs"] if len(directions) > 1 else []))
    return study


def check_study_can_start(location: StudyLocation, settings: StudySettings,
                          resume: bool) -> None:
    """The refusals of :func:`create_or_check_study`, made without creating anything (a
    storage file that does not exist yet holds no study), so that a run that cannot start
    says so before Ray starts."""
    file = storage_file(location.storage_url)
    if file is not None and not file.exists():
        check_start(None, location, settings, resume)
    else:
        check_start(open_storage(location.storage_url), location, settings, resume)


def check_start(storage: BaseStorage | None, location: StudyLocation, settings: StudySettings,
                resume: bool) -> bool:
    """Whether the study exists in ``storage`` (None: no storage yet) and may be resumed;
    a UserError when it exists with other settings, exists without --resume, or is absent
    with --resume."""
    names = set() if storage is None else {s.study_name for s in storage.get_all_studies()}
    if location.name not in names:
        if resume:
            raise UserError(f"--resume: there is no study {location.name!r} in "
                            f"{location.storage_url} to resume; drop --resume to start it.")
        return False
    study_id = storage.get_study_id_from_name(location.name)
    stored = storage.get_study_user_attrs(study_id).get(StudyAttr.SETTINGS)
    if stored is None:
        raise UserError(f"study {location.name!r} in {location.storage_url} was not made by "
                        f"rampsearch; choose another --study name.")
    differences = settings_differences(stored, settings.to_dict())
    if differences:
        raise UserError(f"study {location.name!r} already exists with other settings "
                        f"({'; '.join(differences)}). Resume it with the same settings, or "
                        f"start a new study with --study NEW_NAME.")
    if not resume:
        raise UserError(f"study {location.name!r} already exists. Add --resume to continue "
                        f"it, or choose a new name with --study NEW_NAME.")
    return True


def storage_file(url: str) -> Path | None:
    """The file a SQLite URL or a journal path keeps its studies in; None for a server."""
    if "://" not in url:
        return Path(url)
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///").partition("?")[0])
    return None


def study_settings(study: optuna.Study) -> StudySettings:
    """The settings a study reopened from its storage was made with: the one way a later
    command reads them (its objective, its budget)."""
    stored = study.user_attrs.get(StudyAttr.SETTINGS)
    if stored is None:
        raise UserError(f"study {study.study_name!r} was not made by rampsearch (it stores no "
                        f"settings); open a study written by `rampsearch run`.")
    return StudySettings.from_dict(stored)


def settings_differences(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    return [f"{key}: stored {stored.get(key)!r}, now {wanted.get(key)!r}"
            for key in sorted(set(stored) | set(wanted))
            if key not in RESUMABLE_KEYS and stored.get(key) != wanted.get(key)]


def recover_interrupted(study: optuna.Study) -> list[int]:
    """Mark trials left RUNNING by a driver that died as failed (interrupted) and queue their
    ramps again. Returns the numbers of the recovered trials."""
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        mark_interrupted(study, trial)
        recovered.append(trial.number)
    return recovered


def mark_interrupted(study: optuna.Study, trial: FrozenTrial) -> None:
    storage = study._storage  # the public BaseStorage of the study
    storage.set_trial_user_attr(trial._trial_id, Attr.END_REASON, INTERRUPTED)
    study.tell(trial.number, state=TrialState.FAIL)
    role = trial.user_attrs.get(Attr.ROLE)
    if role == Role.CANDIDATE and trial.params:
        # Same ramp again; the sampler's proposal is not lost.
        study.enqueue_trial(trial.params, user_attrs={Attr.REQUEUED_FROM: trial.number})


def ended_trials(study: optuna.Study, role: str) -> list[FrozenTrial]:
    """Trials of a role that ran to an end (completed, stopped early or failed by themselves),
    i.e. not interrupted, not lost with their Ray worker and not rejected before training."""
    return [t for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get(Attr.ROLE) == role and t.state.is_finished()
            and t.user_attrs.get(Attr.END_REASON) != INTERRUPTED
            and t.user_attrs.get(Attr.STATUS) != Status.WORKER_LOST]


def failure_kind(status: str | None) -> str:
    """Whose failure a trial's status is: "infrastructure" (its Ray worker died: retried),
    "ramp" (it diverged or raised: final), or "" (it did not fail)."""
    if status == Status.WORKER_LOST:
        return "infrastructure"
    return "ramp" if status in (Status.DIVERGED, Status.FAILED) else ""


def baselines_done(study: optuna.Study) -> set[str]:
    return {t.user_attrs.get(Attr.BASELINE) for t in ended_trials(study, Role.BASELINE)}


def queued_trials(study: optuna.Study) -> Iterable[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
