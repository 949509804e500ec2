"""Which ramps a fidelity study measures (the baselines, then ramps spread over the space,
kept once drawn) and which (ramp, setting, seed) trainings it still lacks."""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence

import numpy as np
import optuna

from search_spaces import Budget, SearchSpace

from ..attributes import Attr, Role, StudyAttr
from ..errors import UserError
from ..study import storage as study_lib
from ..study.trials import FixedJob

# The reference trains with other seeds than the proxy: with the same seed both would start
# from the same weights and see the same batches first, which would make them agree by luck.
SEED_OFFSET = {"proxy": 0, "reference": 100}  # every proxy setting starts at 0


# --------------------------------------------------------------------------------- ramps
def choose_ramps(space: SearchSpace, samples: int, budget: Budget | None = None,
                 seed: int = 0, known: Mapping[str, Sequence[int]] | None = None
                 ) -> dict[str, list[int]]:
    """``samples`` distinct ramps by label: the space's baselines first (the paper's ramp
    first; in budget or not), then the ``known`` ramps (those a study already measures, under
    their labels), then ramps drawn from the space with ``seed`` (within ``budget`` if one is
    given) so that they spread over it: conv-heavy and attention-heavy, early and late
    attention, not only ramps near the paper's. A larger ``samples`` extends the same list."""
    if samples < 1:
        raise UserError(f"--samples {samples}: measure at least 1 ramp (8 or more for a rank "
                        f"correlation worth reading).")
    ramps = {label: list(ramp) for label, ramp in space.baselines().items()}
    for label, ramp in (known or {}).items():
        if list(ramp) not in ramps.values():
            ramps.setdefault(label, list(ramp))
    wanted = samples - len(ramps)
    if wanted > 0:
        pool = candidate_pool(space, budget, seed, size=POOL_SIZE)
        pool = [ramp for ramp in pool if ramp not in ramps.values()]
        if len(pool) < wanted:
            raise UserError(f"found only {len(ramps) + len(pool)} distinct ramps of space "
                            f"{space.name} within the budget; lower --samples or raise "
                            f"--budget.")
        base = space.base
        picks = farthest_points([ramp_profile(r, base.depths, base.num_heads) for r in pool],
                                [ramp_profile(r, base.depths, base.num_heads)
                                 for r in ramps.values()], wanted)
        number = 1 + sum(label.startswith("sampled_") for label in ramps)
        for index in picks:
            while f"sampled_{number}" in ramps:
                number += 1
            ramps[f"sampled_{number}"] = pool[index]
    return dict(itertools.islice(ramps.items(), samples))


# Ramps drawn (uniformly, with the seed) among which the spread is chosen. One size for every
# count, so a larger --samples extends the same list.
POOL_SIZE = 4000


def candidate_pool(space: SearchSpace, budget: Budget | None, seed: int, size: int
                   ) -> list[list[int]]:
    """Up to ``size`` distinct feasible ramps drawn uniformly from the space with ``seed``."""
    rng = random.Random(seed)
    pool: dict[tuple[int, ...], None] = {}
    for _ in range(size * 3):
        proposal = space.sample(rng, budget)
        if proposal.feasible:
            pool.setdefault(tuple(proposal.ramp))
            if len(pool) == size:
                break
    return [list(ramp) for ramp in pool]


def ramp_profile(ramp: Sequence[int], depths: Sequence[int], num_heads: Sequence[int]
                 ) -> np.ndarray:
    """The share of attention channels C_l/C in each stage (mean over its blocks): one
    number in [0, 1] a stage, which tells conv-heavy from attention-heavy ramps and early
    attention from late."""
    bounds = np.cumsum([0, *depths])
    return np.array([np.mean(ramp[a:b]) / heads
                     for a, b, heads in zip(bounds[:-1], bounds[1:], num_heads)])


def farthest_points(candidates: Sequence[np.ndarray], chosen: Sequence[np.ndarray],
                    count: int) -> list[int]:
    """Indices of ``count`` candidates picked greedily, each the farthest (Euclidean) from
    everything chosen so far; the first from ``chosen``, or the candidate farthest from the
    candidates' mean when nothing is chosen yet. Ties go to the earlier candidate."""
    points = np.asarray(candidates, dtype=float)
    anchors = np.asarray(chosen, dtype=float).reshape(-1, points.shape[1])
    if len(anchors) == 0:
        anchors = points.mean(axis=0, keepdims=True)
    nearest = np.min(np.linalg.norm(points[:, None, :] - anchors[None, :, :], axis=2), axis=1)
    picks: list[int] = []
    for _ in range(min(count, len(points))):
        index = int(np.argmax(nearest))
        picks.append(index)
        nearest = np.minimum(nearest, np.linalg.norm(points - points[index], axis=1))
        nearest[index] = -1.0
    return picks


def study_ramps(study: optuna.Study) -> dict[str, list[int]]:
    """The ramps a fidelity study measures, by label: the list stored when it was measured,
    or, for a study measured before the list was stored, the labels of its runs."""
    stored = study.user_attrs.get(StudyAttr.FIDELITY, {}).get("ramps")
    if stored:
        return {label: list(ramp) for label, ramp in stored.items()}
    ramps: dict[str, list[int]] = {}
    for trial in study_lib.ended_trials(study, Role.FIDELITY):
        label = trial.user_attrs.get(Attr.RAMP_LABEL)
        if label is not None:
            ramps.setdefault(label, list(trial.user_attrs[Attr.RAMP]))
    return ramps


# ---------------------------------------------------------------------------------- jobs
def measured(study: optuna.Study) -> set[tuple[tuple[int, ...], str, int]]:
    """(ramp, setting, seed) of every fidelity run that ended by itself."""
    return {(tuple(t.user_attrs[Attr.RAMP]), t.user_attrs.get(Attr.FIDELITY_SETTING),
             t.user_attrs.get(Attr.SEED)) for t in study_lib.ended_trials(study, Role.FIDELITY)}


def fidelity_jobs(study: optuna.Study, ramps: Mapping[str, Sequence[int]], setting: str,
                  seeds: int, cpus: float) -> list[FixedJob]:
    """What is still to train for ``setting``: every (ramp, seed) without an ended run,
    seed by seed (an interrupted measurement then covers every ramp once before any twice).
    The seeds of a setting start at its SEED_OFFSET."""
    done = measured(study)
    first = SEED_OFFSET.get(setting, 0)
    return [FixedJob(Role.FIDELITY, f"{label} {setting} s{seed}", list(ramp), seed=seed,
                     attrs={Attr.FIDELITY_SETTING: setting, Attr.RAMP_LABEL: label,
                            Attr.CPUS: cpus})
            for seed in range(first, first + seeds) for label, ramp in ramps.items()
            if (tuple(ramp), setting, seed) not in done]
