"""Analytic FLOPs counter against fvcore tracing, on the same random ramps.

For each config: fvcore's count of the built model (attention written out so it is seen)
and the analytic count must agree exactly; the time of one fvcore trace (model already
built) is compared with the time of one analytic count and of one price lookup in a
RampCostTable (what the search does per candidate).

    python -m benchmarks.bench_flops
"""

from __future__ import annotations

import random
import time
import timeit
import warnings
from collections.abc import Callable

import torch
from fvcore.nn import FlopCountAnalysis

import iformer

IMG_SIZE = 224
RAMPS_PER_PRESET = {"small": 3, "base": 2}


def random_ramps(config: iformer.IFormerConfig, count: int, seed: int) -> list[list[int]]:
    """Random ramps over the full range 0..num_heads, so both branch-less ends appear."""
    rng = random.Random(seed)
    specs = config.blocks()
    ramps = [[rng.randint(0, s.num_heads) for s in specs] for _ in range(count)]
    ramps[0][0], ramps[0][-1] = 0, specs[-1].num_heads
    return ramps


def seconds_per_call(fn: Callable[[], object], min_total: float = 0.2) -> float:
    """Best of five timeit runs, each long enough to measure."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    number = max(number, int(number * min_total / 0.2))
    return min(timer.repeat(repeat=5, number=number)) / number


def fvcore_count(config: iformer.IFormerConfig) -> tuple[int, float]:
    """fvcore FLOPs of the built model and the seconds one trace took."""
    model = iformer.set_fused_attn(iformer.create_model(config), False).eval()
    images = torch.randn(1, 3, IMG_SIZE, IMG_SIZE)
    start = time.perf_counter()
    analysis = FlopCountAnalysis(model, images)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    flops = analysis.total()
    return flops, time.perf_counter() - start


def measure() -> list[dict[str, object]]:
    rows = []
    for seed, (name, count) in enumerate(RAMPS_PER_PRESET.items()):
        base = iformer.preset(name, img_size=IMG_SIZE)
        table = iformer.ramp_cost_table(base)
        for ramp in random_ramps(base, count, seed):
            config = base.with_ramp(ramp)
            traced, trace_s = fvcore_count(config)
            analytic = iformer.count_flops(config)
            rows.append(dict(
                preset=name, ramp=ramp, fvcore=traced, analytic=analytic,
                table=table.flops(ramp), trace_s=trace_s,
                analytic_s=seconds_per_call(lambda c=config: iformer.count_flops(c)),
                table_s=seconds_per_call(lambda r=ramp, t=table: t.flops(r)),
            ))
    return rows


def main() -> None:
    # fvcore traces with torch.jit, which warns that it is deprecated.
    warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated", category=FutureWarning)
    print(f"FLOPs counter vs fvcore tracing ({IMG_SIZE} px, batch 1, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads)")
    rows = measure()
    header = (f"{'config':<13} {'fvcore FLOPs':>15} {'analytic':>15} {'equal':>5} "
              f"{'fvcore ms':>9} {'analytic us':>11} {'speed-up':>9} {'table us':>8}")
    print(header)
    print("-" * len(header))
    for i, row in enumerate(rows):
        speedup = row["trace_s"] / row["analytic_s"]
        equal = row["fvcore"] == row["analytic"] == row["table"]
        print(f"{row['preset'] + ' #' + str(i):<13} {row['fvcore']:>15,} {row['analytic']:>15,} "
              f"{'yes' if equal else 'NO':>5} {row['trace_s'] * 1e3:>9.0f} "
              f"{row['analytic_s'] * 1e6:>11.1f} {speedup:>8.0f}x {row['table_s'] * 1e6:>8.2f}")
    worst_speedup = min(r["trace_s"] / r["analytic_s"] for r in rows)
    slowest_us = max(r["analytic_s"] for r in rows) * 1e6
    agree = all(r["fvcore"] == r["analytic"] == r["table"] for r in rows)
    print(f"all equal: {agree}; smallest speed-up {worst_speedup:.0f}x (target >= 1000x); "
          f"slowest analytic count {slowest_us:.0f} us (target < 1000 us)")


if __name__ == "__main__":
    main()
