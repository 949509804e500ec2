"""Train jobs on Ray with live progress lines: the one way `run`, `rank` and `fidelity` train.

Ray starts with the first call that trains and stays up, in the caller's ``session`` (an
``ExitStack``), for the calls after it; a call with nothing to train starts nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses

import optuna

from ..data import ProxyData
from ..reporting.progress import Progress
from ..study.plan import SearchPlan
from ..study.storage import recover_interrupted
from ..study.trials import FixedJob, work_left
from .connection import ray_session
from .searcher import SearchOutcome, execute


def train_jobs(study: optuna.Study, plan: SearchPlan, jobs: list[FixedJob], data: ProxyData,
               session: contextlib.ExitStack, candidates: int = 0) -> SearchOutcome:
    """Train the fixed ``jobs``, then ``candidates`` proposals of the study's sampler, under
    ``plan.proxy``, printing a line per finished training ranked by the plan's objective."""
    session.enter_context(ray_session(plan))
    progress = Progress(total_jobs=len(jobs) + candidates, concurrency=plan.max_concurrent or 1,
                        depths=plan.space.base.depths, epochs=plan.proxy.epochs,
                        objective=plan.objective)
    outcome = execute(study, plan, data, jobs, candidates, progress)
    progress.finish()
    return outcome


def search_study(study: optuna.Study, plan: SearchPlan, data: ProxyData,
                 session: contextlib.ExitStack) -> SearchOutcome:
    """Train what the study still lacks: recover interrupted trials, then the baselines not
    yet measured and the candidates still wanted."""
    recovered = recover_interrupted(study)
    baselines, candidates = work_left(study, plan)
    outcome = train_jobs(study, plan, baselines, data, session, candidates)
    return dataclasses.replace(outcome, recovered=recovered)
