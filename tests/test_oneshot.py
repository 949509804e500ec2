"""One-shot search: ramp samplers, the slot-masked optimizer, supernet training through the
real engine (and its resume), scoring with a cache, and scores in a real study that
`rampsearch rank` and `rampsearch export` read."""

from __future__ import annotations

import collections
import csv
import dataclasses
import random
from pathlib import Path

import optuna
import pytest
import torch
from cli_runs import rampsearch
from torch import nn

from iformer.supernet import IFormerSupernet
from rampsearch.data import load_proxy_data
from rampsearch.errors import UserError
from rampsearch.oneshot import (
    SUPERNET,
    RampSampler,
    SupernetSettings,
    score_ramps,
    train_supernet,
    validation_batches,
)
from rampsearch.oneshot.optimizer import SlotMaskCache, SlotMaskedAdamW
from rampsearch.oneshot.sampling import uniform_ramp
from rampsearch.oneshot.search import SamplingCopy, score_jobs, tell_duplicate, tell_score
from rampsearch.oneshot.training import SubnetsLoss
from rampsearch.study import trials as bookkeeping
from rampsearch.study.plan import SearchPlan
from rampsearch.study.storage import (
    StudyLocation,
    StudySettings,
    create_or_check_study,
    default_storage_url,
    write_run_file,
)
from rampsearch.training.proxy import ProxySettings, proxy_model_config
from search_spaces import check_budget, load_space, parse_budget

BUDGET = parse_budget("4.8GFLOPs")  # below the paper's ramp (4.85 G): the budget binds
# A few seconds of training on one thread: 4 steps an epoch at 1/8 of the width.
TINY = ProxySettings(width=0.125, train_samples=128, val_samples=96, batch_size=32)


@pytest.fixture(scope="module")
def data():
    return load_proxy_data("synthetic", 64, TINY.train_samples, TINY.val_samples)


def pairs_of(ramps: list[list[int]]) -> set[tuple[int, int]]:
    return {(block, heads) for ramp in ramps for block, heads in enumerate(ramp)}


# ---------------------------------------------------------------------------- samplers
def test_fair_sampler_trains_every_head_count_the_budget_allows_in_a_free_space() -> None:
    space = load_space("free")
    sampler = RampSampler(space, BUDGET, "fair", seed=0)
    ramps = [sampler.next_ramps()[0] for _ in range(400)]
    assert all(space.contains(r) and space.flops(r) <= BUDGET.flops for r in ramps)
    # In a free space a head count is reachable iff it fits beside the cheapest other blocks.
    table = space.cost_table(BUDGET.img_size)
    cheapest = table.min_flops()
    reachable = {(b, a) for b, costs in enumerate(table.per_block) for a, cost in
                 enumerate(costs) if cheapest - min(costs) + cost <= BUDGET.flops}
    assert len(reachable) > 150 and pairs_of(ramps) == reachable
    uses = collections.Counter((b, a) for r in ramps for b, a in enumerate(r))
    # Fairer than the space's own sampler, whose rarest head count is trained least.
    uniform = RampSampler(space, BUDGET, "uniform", seed=0)
    uniform_uses = collections.Counter(
        (b, a) for _ in range(400) for b, a in enumerate(uniform.next_ramps()[0]))
    assert min(uses.values()) > min(uniform_uses.get(p, 0) for p in reachable)


def test_fair_sampler_reaches_what_uniform_sampling_reaches_in_the_monotone_space() -> None:
    space = load_space("monotone")
    sampler = RampSampler(space, BUDGET, "fair", seed=1)
    ramps = [sampler.next_ramps()[0] for _ in range(400)]
    assert all(space.contains(r) and space.flops(r) <= BUDGET.flops for r in ramps)
    rng = random.Random(0)
    uniform = pairs_of([uniform_ramp(space, BUDGET, rng) for _ in range(3000)])
    assert pairs_of(ramps) >= uniform
    # Without a budget every head count of every block has a monotone ramp.
    unbounded = RampSampler(space, None, "fair", seed=2)
    every = {(s.index, a) for s in space.base.blocks() for a in range(s.num_heads + 1)}
    assert pairs_of([unbounded.next_ramps()[0] for _ in range(300)]) == every


def test_sandwich_steps_hold_both_extremes_and_random_ramps_within_the_budget() -> None:
    space = load_space("monotone")
    sampler = RampSampler(space, BUDGET, "sandwich", seed=0, random_ramps=2)
    steps = [sampler.next_ramps() for _ in range(20)]
    largest, smallest = steps[0][0], steps[0][1]
    assert sum(largest) > sum(smallest)
    for ramps in steps:
        assert len(ramps) == 4 and ramps[:2] == [largest, smallest]
        assert all(space.contains(r) and space.flops(r) <= BUDGET.flops for r in ramps)
    assert len({tuple(r) for ramps in steps for r in ramps[2:]}) > 10
    # Nothing uniform draws has more (fewer) attention heads in total than the extremes.
    draws = [uniform_ramp(space, BUDGET, random.Random(s)) for s in range(300)]
    assert max(map(sum, draws)) <= sum(largest) and min(map(sum, draws)) >= sum(smallest)


def test_settings_round_trip_and_name_the_fix() -> None:
    settings = SupernetSettings(strategy="sandwich", epochs=3, distillation=True)
    assert SupernetSettings.from_dict(settings.to_dict()) == settings
    with pytest.raises(UserError, match=r"strategy is 'greedy'; use one of uniform, fair"):
        SupernetSettings.from_dict({"strategy": "greedy"})
    with pytest.raises(UserError, match="unknown supernet setting"):
        SupernetSettings.from_dict({"epoch": 3})
    with pytest.raises(UserError, match="fair needs a space whose parameters are head counts"):
        RampSampler(load_space("smooth"), None, "fair", seed=0)


# --------------------------------------------------------------------------- optimizer
def test_slot_masked_adamw_is_adamw_when_every_entry_is_used() -> None:
    torch.manual_seed(0)
    ours, theirs = nn.Linear(6, 4), nn.Linear(6, 4)
    theirs.load_state_dict(ours.state_dict())

    def groups(model: nn.Linear) -> list[dict]:
        return [{"params": [model.weight], "weight_decay": 0.05},
                {"params": [model.bias], "weight_decay": 0.0}]

    masked = SlotMaskedAdamW(groups(ours), lambda: {ours.weight: torch.ones(4, 6, dtype=bool)},
                             lr=1e-2)
    adamw = torch.optim.AdamW(groups(theirs), lr=1e-2)
    for _ in range(5):
        inputs = torch.randn(8, 6)
        for model, optimizer in ((ours, masked), (theirs, adamw)):
            optimizer.zero_grad()
            model(inputs).square().mean().backward()
            optimizer.step()
    for mine, reference in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(mine, reference, rtol=1e-5, atol=1e-7)


def test_a_step_leaves_the_slots_its_ramp_did_not_use_exactly_as_they_were() -> None:
    config = proxy_model_config(load_space("free").base, TINY, num_classes=4)
    torch.manual_seed(0)
    supernet = IFormerSupernet(config)
    masks = SlotMaskCache(supernet)
    ramps: list[list[int]] = []
    optimizer = SlotMaskedAdamW([{"params": list(supernet.parameters()), "weight_decay": 0.5}],
                                lambda: masks.used_by(ramps), lr=1e-2)
    inputs, targets = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])
    heads = [s.num_heads for s in config.blocks()]
    for ramp in ([n for n in heads], [n // 2 for n in heads], [0] * len(heads)):
        ramps[:] = [ramp]
        before = {name: p.detach().clone() for name, p in supernet.named_parameters()}
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(supernet.set_ramp(ramp)(inputs), targets).backward()
        optimizer.step()
        used = masks.used_by([ramp])
        moved_outside = [name for name, p in supernet.named_parameters() if p in used
                         and not torch.equal(p[~used[p]], before[name][~used[p]])]
        assert moved_outside == []  # no decay, no stale momentum on unused slots
        # ... while every mixer parameter with used slots moved in them.
        still = [name for name, p in supernet.named_parameters() if p in used
                 and used[p].any() and torch.equal(p[used[p]], before[name][used[p]])]
        assert still == []


# ----------------------------------------------------------------- training and scoring
def test_distillation_teaches_the_other_subnets_with_the_teachers_detached_predictions(
        ) -> None:
    logits = torch.randn(3, 5, 4, requires_grad=True)  # teacher and two students
    targets = torch.tensor([0, 1, 2, 3, 0])
    SubnetsLoss(0.1, distillation=True)(logits, targets).backward()
    teacher = logits.detach()[0].clone().requires_grad_()
    (nn.CrossEntropyLoss(label_smoothing=0.1)(teacher, targets) / 3).backward()
    torch.testing.assert_close(logits.grad[0], teacher.grad)  # the students do not move it
    # A student whose logits equal the teacher's gets no pull from the soft targets.
    same = logits.detach()[[0, 0]].clone().requires_grad_()
    SubnetsLoss(0.1, distillation=True)(same, targets).backward()
    assert same.grad[1].abs().max() < 1e-6


def test_resumed_supernet_training_ends_with_the_uninterrupted_weights(data, tmp_path) -> None:
    space = load_space("monotone")
    settings = SupernetSettings(strategy="fair", epochs=2)
    whole = train_supernet(space.base, space, BUDGET, data, TINY, settings, num_threads=1)
    checkpoint = tmp_path / "supernet.pt"
    epochs_seen: list[int] = []

    def stop_after_first(metrics) -> bool:  # the progress callback ends the run: a kill
        epochs_seen.append(metrics.epoch)
        return True

    stopped = train_supernet(space.base, space, BUDGET, data, TINY, settings,
                             checkpoint=checkpoint, on_epoch=stop_after_first, num_threads=1)
    assert stopped.result.status == "stopped" and epochs_seen == [1] and checkpoint.is_file()
    resumed = train_supernet(space.base, space, BUDGET, data, TINY, settings,
                             checkpoint=checkpoint, on_epoch=lambda m: epochs_seen.append(m.epoch),
                             num_threads=1)
    assert resumed.resumed_from_epoch == 1 and epochs_seen == [1, 2]
    # The training's CPU time counts the epoch before the interruption too.
    assert resumed.total_cpu_s > resumed.cpu_s > 0
    assert resumed.result.status == "completed"
    expected = whole.supernet.state_dict()
    different = [k for k, v in resumed.supernet.state_dict().items()
                 if not torch.equal(v, expected[k])]
    assert different == []
    assert resumed.sampler.state_dict() == whole.sampler.state_dict()
    other = dataclasses.replace(settings, strategy="uniform")
    with pytest.raises(UserError, match="trained with other settings"):
        train_supernet(space.base, space, BUDGET, data, TINY, other, checkpoint=checkpoint)


def study_plan(results: Path, name: str, space_name: str) -> SearchPlan:
    """A search plan and its study on disk, as `rampsearch run` leaves them."""
    space = load_space(space_name)
    location = StudyLocation(name, default_storage_url(results / name), results)
    settings = StudySettings(base=space.base_name, space=space_name, budget=BUDGET,
                             data="synthetic", proxy=TINY.to_dict(), sampler="tpe", seed=0,
                             scheduler="fifo")
    write_run_file(location, settings, trials=0)
    return SearchPlan(location=location, settings=settings, space=space, budget=BUDGET,
                      check=check_budget(space, BUDGET), proxy=TINY, trials=0,
                      cpus_per_trial=1, gpus_per_trial=0, max_concurrent=1, ray_address=None)


def test_a_trained_supernet_scores_ramps_into_a_study_that_rank_and_export_read(
        data, tmp_path) -> None:
    plan = study_plan(tmp_path, "oneshot", "monotone")
    settings = SupernetSettings(strategy="fair", epochs=2, score_samples=64)
    run = train_supernet(plan.space.base, plan.space, BUDGET, data, TINY, settings,
                         num_threads=1)
    assert run.result.status == "completed" and len(run.result.history) == 2
    batches = validation_batches(data, TINY, settings, torch.device("cpu"))
    assert sum(len(labels) for _, labels in batches) == 64
    rng = random.Random(7)
    ramps = list({tuple(uniform_ramp(plan.space, BUDGET, rng)) for _ in range(60)})[:50]
    cache: dict = {}
    scores = score_ramps(run.supernet, ramps, batches, cache, num_threads=1)
    assert [s.ramp for s in scores] == ramps and len(cache) == 50
    assert len({round(s.val_loss, 6) for s in scores}) > 40  # ramps differ, images do not
    # Same ramp, same images, same weights: the same score as its extracted stand-alone model.
    standalone = run.supernet.extract_subnet(ramps[0]).eval()
    with torch.inference_mode():
        loss = sum(nn.functional.cross_entropy(standalone(x), y, reduction="sum").item()
                   for x, y in batches) / 64
    assert loss == pytest.approx(scores[0].val_loss, rel=1e-5)
    # The cache answers without running the supernet again.
    forwards = []
    hook = run.supernet.register_forward_hook(lambda *args: forwards.append(1))
    again = score_ramps(run.supernet, ramps[:10], batches, cache)
    hook.remove()
    assert forwards == [] and again == scores[:10]

    # Scores told through the one-shot search's bookkeeping, proposed from the in-memory copy.
    plan = dataclasses.replace(plan, trials=50)
    study = create_or_check_study(plan.location, plan.settings,
                                  optuna.samplers.RandomSampler(seed=3), resume=False)
    sampling = SamplingCopy(study)
    seen: set = set()
    told = []
    for job in score_jobs(sampling.memory, plan, seen):
        if job.role == "candidate":
            seen.add(job.ramp)
        told.append((job, score_ramps(run.supernet, [job.ramp], batches, cache, 1)[0]))
        tell_score(sampling.memory, job, told[-1][1], "val_loss", epochs=2)
    assert study.get_trials() == [] and sampling.flush() == len(told)
    trials = study.get_trials()
    candidates = [t for t in trials if t.user_attrs["role"] == "candidate"]
    assert len({tuple(t.user_attrs["ramp"]) for t in candidates}) == 50
    assert {t.user_attrs["baseline"] for t in trials if t.user_attrs["role"] == "baseline"} == {
        "paper", "equal_split", "reverse_ramp", "all_attention_but_one", "one_attention_head"}
    assert {t.user_attrs["score_source"] for t in trials} == {SUPERNET}
    assert [t.number for t in trials] == [job.trial.number for job, _ in told]
    assert all(plan.space.decode(t.params) == t.user_attrs["ramp"] for t in candidates)
    assert all(t.values == [s.val_loss] for t, (_, s) in zip(trials, told))
    # The attributes a stand-alone candidate gets from `rampsearch run`'s bookkeeping.
    standalone_study = optuna.create_study()
    trial, _ = bookkeeping.ask_feasible(standalone_study, plan)
    bookkeeping.tell_outcome(standalone_study, trial, {"final": True, "status": "completed",
                                                       "epoch": 1, "top1": 50.0, "top5": 90.0,
                                                       "val_loss": 1.0}, False, "val_loss")
    optional = {"repaired"}  # only where the budget narrowed the sampler's proposal
    expected = set(standalone_study.trials[0].user_attrs) | {"score_source", "score_images"}
    assert set(candidates[0].user_attrs) - optional == expected - optional
    assert candidates[0].system_attrs.keys() == standalone_study.trials[0].system_attrs.keys()
    scores = [s for _, s in told]
    numbers = [t.number for t in trials]

    args = ("--results", str(tmp_path), "--study", "oneshot")
    ranked = rampsearch("rank", *args, "--top", "5", timeout=300)
    assert ranked.returncode == 0, ranked.stderr
    with (tmp_path / "oneshot" / "leaderboard.csv").open() as file:
        rows = list(csv.DictReader(file))
    best = min((s for (job, s) in told if job.role == "candidate"), key=lambda s: s.val_loss)
    assert len(rows) == 55 and float(rows[0]["val_loss"]) <= best.val_loss
    exported = rampsearch("export", *args, timeout=300)
    assert exported.returncode == 0, exported.stderr
    best_trial = numbers[scores.index(best)]
    assert f"exported trial {best_trial} (candidate" in exported.stdout


# ------------------------------------------------------------------- one-shot bookkeeping
def fixed_score(ramp, value: float):
    from rampsearch.oneshot.scoring import RampScore

    return RampScore(tuple(ramp), value, 50.0, 90.0, 0.5, 64)


def test_the_sampling_copy_writes_told_trials_in_order_under_the_stored_numbers(tmp_path):
    plan = dataclasses.replace(study_plan(tmp_path, "copy", "monotone"), trials=6)
    study = create_or_check_study(plan.location, plan.settings,
                                  optuna.samplers.RandomSampler(seed=1), resume=False)
    # An earlier run left a finished trial and one that never ended (its driver was killed).
    earlier = study.ask()
    study.tell(earlier, state=optuna.trial.TrialState.FAIL)
    study.ask()
    sampling = SamplingCopy(study)
    seen: set = set()
    jobs = score_jobs(sampling.memory, plan, seen)
    first = [next(jobs) for _ in range(7)]  # 5 baselines, 2 candidates
    second = first[6]
    tell_score(sampling.memory, first[6], fixed_score(first[6].ramp, 1.0), "val_loss", 2)
    assert sampling.flush() == 0  # the trials before it are still being scored
    for job in first[:6]:
        tell_score(sampling.memory, job, fixed_score(job.ramp, 2.0), "val_loss", 2)
    assert sampling.flush() == 7
    again = next(jobs)  # the same ramp proposed again: FAIL in the copy, never written
    tell_duplicate(sampling.memory, again, first=second.trial.number)
    assert sampling.flush() == 0
    stored = study.get_trials()
    assert [t.state.name for t in stored[:2]] == ["FAIL", "RUNNING"]
    assert [t.number for t in stored] == list(range(9))
    assert [t.user_attrs["ramp"] for t in stored[2:9]] == [list(j.ramp) for j in first]
    # The copy numbered the scoring trials from 1 (it holds only finished trials), the stored
    # study from 2.
    assert sampling.stored_number(second.trial.number) == 8
    assert sampling.memory.trials[again.trial.number].state.name == "FAIL"


def test_scoring_ends_when_the_sampler_only_repeats_itself(tmp_path, monkeypatch):
    from rampsearch.oneshot import search

    plan = dataclasses.replace(study_plan(tmp_path, "repeat", "monotone"), trials=100)
    ramp = uniform_ramp(plan.space, BUDGET, random.Random(0))
    # Every parameter fixed: the sampler proposes one ramp, always.
    fixed = optuna.samplers.PartialFixedSampler(plan.space.encode(ramp),
                                                optuna.samplers.RandomSampler(seed=0))
    study = optuna.create_study(sampler=fixed)
    monkeypatch.setattr(search, "MAX_REPEATS", 4)
    seen: set = set()
    candidates = []
    for job in score_jobs(study, plan, seen):
        if job.role == "candidate":
            seen.add(job.ramp)
            candidates.append(job.ramp)
        tell_score(study, job, fixed_score(job.ramp, 1.0), "val_loss", 1)
    assert candidates == [tuple(ramp)] * 5 and len(seen) == 1


def test_study_settings_keep_the_supernet_and_a_stand_alone_study_reads_as_before():
    space = load_space("monotone")
    plain = StudySettings(base=space.base_name, space="monotone", budget=BUDGET,
                          data="synthetic", proxy=TINY.to_dict(), sampler="tpe", seed=0,
                          scheduler="none")
    assert "supernet" not in plain.to_dict() and plain.strategy == "standalone"
    assert StudySettings.from_dict(plain.to_dict()).to_dict() == plain.to_dict()
    oneshot = dataclasses.replace(plain, supernet=SupernetSettings(epochs=3).to_dict())
    assert oneshot.strategy == "oneshot"
    assert StudySettings.from_dict(oneshot.to_dict()).supernet == oneshot.supernet


def test_a_ramp_scored_twice_is_raced_once():
    import pandas as pd

    from rampsearch.attributes import PAPER
    from rampsearch.ranking.race_results import leaders

    frame = pd.DataFrame({
        "trial": [4, 7, 5, 0], "role": ["candidate", "candidate", "candidate", PAPER],
        "status": ["completed"] * 4, "within_budget": [True] * 4,
        "ramp": [[1, 2], [1, 2], [2, 2], [3, 3]]})
    assert list(leaders(frame, 2)["trial"]) == [4, 5, 0]
