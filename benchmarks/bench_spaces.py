"""Search spaces on iformer_small: proposals per second, and how many proposals fit a budget.

    python -m benchmarks.bench_spaces [--tpe-trials 150]

Speed: the bare path (a seeded ``random.Random`` drawing the ramp, with and without the exact
budget narrowing) against ``propose`` on real Optuna trials from ``study.ask()`` with the
RandomSampler, whose ask/tell alone is measured beside it.

Feasibility at 4.7, 4.8 and 4.9 GFLOPs: the exact share of the space's ramps within the
budget; the share of plain ``suggest`` draws within it (what rejection sampling would face);
the share of ``propose`` results that are feasible with the RandomSampler; and, after 100
trials, the share of feasible proposals of multivariate TPE told the FLOPs constraint, once
with plain ``suggest`` + rejection and once with ``propose`` (rejected trials are told as
PRUNED, as the search does). TPE's objective is the FLOPs
themselves (maximised), which drives it to the budget's edge: the hardest case.
"""

from __future__ import annotations

import argparse
import random
import time
import warnings

import optuna
from optuna.trial import TrialState

from search_spaces import CONSTRAINT_KEY, Budget, load_space, parse_budget, space_names

BUDGETS = ("4.7G", "4.8G", "4.9G")


def rate(calls: int, seconds: float) -> str:
    return f"{calls / seconds:,.0f}/s"


def bare_rate(space, budget: Budget | None, count: int) -> float:
    rng = random.Random(0)
    started = time.perf_counter()
    for _ in range(count):
        space.sample(rng, budget)
    return time.perf_counter() - started


def optuna_rate(space, budget: Budget, count: int, call: str) -> float:
    """Seconds for ``count`` rounds of ask, then ``call`` ('propose', 'suggest' or nothing),
    then tell, with the RandomSampler."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    started = time.perf_counter()
    for _ in range(count):
        trial = study.ask()
        if call == "propose":
            space.propose(trial, budget)
        elif call == "suggest":
            space.suggest(trial)
        study.tell(trial, 0.0)
    return time.perf_counter() - started


def speed_table(count: int, optuna_count: int) -> None:
    budget = parse_budget("4.8G")
    print(f"proposals per second at {budget} (target: 10,000/s)")
    print(f"{'':<10} {'bare path':^24}  {'Optuna trials, RandomSampler':^60}")
    print(f"{'space':<10} {'draw':>11} {'draw+budget':>12}  {'ask+tell':>10} "
          f"{'ask+suggest+tell':>17} {'ask+propose+tell':>17} {'propose':>12}")
    for name in space_names():
        space = load_space(name)
        space.sample(random.Random(0), budget)  # build the cost tables outside the timing
        plain = bare_rate(space, None, count)
        narrowed = bare_rate(space, budget, count)
        bare = optuna_rate(space, budget, optuna_count, "")
        suggested = optuna_rate(space, budget, optuna_count, "suggest")
        proposed = optuna_rate(space, budget, optuna_count, "propose")
        alone = (proposed - bare) / optuna_count  # propose within a trial, without ask/tell
        print(f"{name:<10} {rate(count, plain):>11} {rate(count, narrowed):>12}  "
              f"{rate(optuna_count, bare):>10} {rate(optuna_count, suggested):>17} "
              f"{rate(optuna_count, proposed):>17} {1 / alone:>10,.0f}/s")


def tpe_feasible_share(space, budget: Budget, trials: int, with_propose: bool) -> float:
    """Share of feasible proposals among those after the 100th trial."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # group is experimental
        # The sampler reads each trial's own constraint, set by propose (or by the caller).
        sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=10, multivariate=True,
                                             group=True)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    late = feasible = 0
    for number in range(trials):
        trial = study.ask()
        if with_propose:
            proposal = space.propose(trial, budget)
            ramp, flops, ok = proposal.ramp, proposal.flops, proposal.feasible
        else:
            ramp = space.suggest(trial)
            flops = space.flops(ramp, budget.img_size)
            ok = flops <= budget.flops
            trial.set_constraint(CONSTRAINT_KEY, float(flops - budget.flops))
        if number >= min(100, trials // 2):
            late += 1
            feasible += ok
        if ok:
            study.tell(trial, flops / 1e9)
        else:
            study.tell(trial, state=TrialState.PRUNED)
    return feasible / late


def feasibility_table(draws: int, optuna_draws: int, tpe_trials: int) -> None:
    print()
    print(f"share of proposals within the budget (TPE: trials {min(100, tpe_trials // 2)} to "
          f"{tpe_trials})")
    print(f"{'space':<10} {'budget':>6} {'space':>7} {'suggest':>8} {'propose':>8} "
          f"{'TPE+reject':>11} {'TPE+propose':>12}")
    for name in space_names():
        space = load_space(name)
        for text in BUDGETS:
            budget = parse_budget(text)
            exact, is_exact = space.feasible_fraction(budget)
            rng = random.Random(1)
            plain = sum(space.sample(rng).flops <= budget.flops for _ in range(draws)) / draws
            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
            proposed = 0
            for _ in range(optuna_draws):
                trial = study.ask()
                proposed += space.propose(trial, budget).feasible
                study.tell(trial, 0.0)
            rejecting = tpe_feasible_share(space, budget, tpe_trials, with_propose=False)
            narrowing = tpe_feasible_share(space, budget, tpe_trials, with_propose=True)
            mark = "" if is_exact else "~"
            print(f"{name:<10} {text:>6} {mark}{exact:>6.1%} {plain:>8.1%} "
                  f"{proposed / optuna_draws:>8.1%} {rejecting:>11.1%} {narrowing:>12.1%}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20_000)
    parser.add_argument("--optuna-draws", type=int, default=1_000)
    parser.add_argument("--tpe-trials", type=int, default=200)
    args, _ = parser.parse_known_args(argv)  # `python -m benchmarks TOPIC` passes topics
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    speed_table(args.draws, args.optuna_draws)
    feasibility_table(args.draws // 4, args.optuna_draws // 4, args.tpe_trials)


if __name__ == "__main__":
    main()
