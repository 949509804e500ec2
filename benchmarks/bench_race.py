"""The race's error rates and power, simulated with its own code, designs side by side.

    python -m benchmarks.bench_race [--races 4000] [--max-seeds 6]

Scores are validation losses made up as the ramp's value + a seed effect shared by every
ramp (std 0.5) + the training's own noise (std 1), so effects are in noise standard
deviations (``rampsearch.race_simulation``). A claim is the verdict 'better' or 'worse' for
the leader the race reports. On equal ramps every claim is false (two-sided: both added up);
with the paper's ramp worse by 1 or 2 noise SDs, 'better' is the power.

Designs (first look at 3 paired seeds, one more seed a look, up to --max-seeds):
  95% every look       the naive race: stop at the first interval that excludes 0
  99% early, 95% last  rampsearch before Haybittle-Peto
  Pocock               one level at every look (98.2%, Pocock's for four looks)
  HP                   99.9% early, 95% last (Haybittle-Peto)
  HP + spending        99.9% early, the last gets what they left of 5% (the race's default)
For K leaders each design is Bonferroni-corrected across the K comparisons with the paper's
ramp, and, for contrast, left uncorrected.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from rampsearch.ranking.race import RaceRules, race_seeds
from rampsearch.ranking.race_simulation import verdict_rates


@dataclass(frozen=True)
class FixedFinal(RaceRules):
    """A design whose last look is at ``fixed_final`` whatever the early looks spent."""

    fixed_final: float = 0.95

    @property
    def final_level(self) -> float:
        return self.fixed_final


def designs(max_seeds: int) -> dict[str, callable]:
    seeds = race_seeds(0, max_seeds)
    return {
        "95% every look": lambda k: FixedFinal(seeds, comparisons=k, interim_level=0.95),
        "99% early, 95% last": lambda k: FixedFinal(seeds, comparisons=k, interim_level=0.99),
        "Pocock 98.2%": lambda k: FixedFinal(seeds, comparisons=k, interim_level=0.982,
                                             fixed_final=0.982),
        "HP 99.9%/95%": lambda k: FixedFinal(seeds, comparisons=k),
        "HP + spending (default)": lambda k: RaceRules(seeds, comparisons=k),
    }


def row(name: str, rules_for, leaders: int, races: int, seed: int) -> str:
    started = time.perf_counter()
    null = verdict_rates(np.random.default_rng(seed), rules_for, leaders, 0.0, races)
    one = verdict_rates(np.random.default_rng(seed + 1), rules_for, leaders, 1.0, races // 2)
    two = verdict_rates(np.random.default_rng(seed + 2), rules_for, leaders, 2.0, races // 2)
    claims = null["better"] + null["worse"]
    level = rules_for(leaders)
    return (f"| {name} | {leaders} | {100 * level.corrected(level.interim_level):.2f}% / "
            f"{100 * level.verdict_level:.2f}% | {100 * null['better']:.1f}% | "
            f"{100 * null['worse']:.1f}% | **{100 * claims:.1f}%** | {claims / 0.05:.2f} | "
            f"{100 * one['better']:.1f}% | {100 * two['better']:.1f}% | "
            f"{100 * two['worse']:.1f}% | {null['trainings']:.1f} / {two['trainings']:.1f} | "
            f"{time.perf_counter() - started:.1f} s |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--races", type=int, default=4000, help="races per null cell")
    parser.add_argument("--max-seeds", type=int, default=6)
    args, _ = parser.parse_known_args(argv)  # `python -m benchmarks TOPIC` passes topics
    print(f"{args.races} races on equal ramps, {args.races // 2} at 1 and at 2 noise SDs, up "
          f"to {args.max_seeds} seeds; two-sided/5% is the ratio to one test's rate")
    print("| design | K | early / last level | false better | false worse | two-sided | "
          "/5% | power 1 SD | power 2 SD | wrong way 2 SD | trainings null / 2 SD | time |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    table = designs(args.max_seeds)
    for name, rules_for in table.items():
        print(row(name, rules_for, 1, args.races, 1), flush=True)
    chosen = table["HP + spending (default)"]
    for leaders in (2, 3, 5):
        print(row("HP + spending, Bonferroni", chosen, leaders, args.races, leaders), flush=True)
        print(row("HP + spending, uncorrected", lambda k: chosen(k) if k == 1 else
                  RaceRules(race_seeds(0, args.max_seeds), comparisons=1),
                  leaders, args.races, leaders), flush=True)


if __name__ == "__main__":
    main()
