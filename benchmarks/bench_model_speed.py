"""Training throughput of iFormer against a reference-style eager baseline, side by side.

One training step is forward + backward + AdamW step on random images. For each setting the
baseline (``benchmarks/reference_style.py``) loads our model's weights and must give the same
logits before anything is timed; then the two alternate in rounds and each model's best
round counts (rounds disturbed by other work on the machine only get slower). Achieved
GFLOP/s use the analytic forward FLOPs x3 for forward + backward, at 2 flops per multiply-add,
next to this machine's fp32 matmul peak measured in the same run.

The table is printed twice: with all of torch's threads, timed by the wall clock (the
throughput a user sees), and with one thread, timed by the process's CPU time, which other
jobs on a shared machine disturb far less.

    python -m benchmarks.bench_model_speed [--threads N ...]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import iformer
from benchmarks.reference_style import ReferenceStyleIFormer


@dataclass(frozen=True)
class Setting:
    name: str
    config: iformer.IFormerConfig
    batch: int
    steps_per_round: int
    rounds: int


def proxy_config(small: iformer.IFormerConfig) -> iformer.IFormerConfig:
    """The default proxy's model: x0.25 width, 64 px, 10 classes."""
    return iformer.IFormerConfig(**{**small.scaled(0.25).to_dict(), "img_size": 64,
                                    "num_classes": 10})


def settings() -> list[Setting]:
    small = iformer.preset("small")
    proxy = proxy_config(small)
    return [
        Setting("proxy: small x0.25, 64 px", proxy, batch=64, steps_per_round=4, rounds=8),
        Setting("iformer_small, 224 px", small, batch=8, steps_per_round=2, rounds=5),
    ]


MATMUL_SIZE = 2048


def matmul_gflops(clock: Callable[[], float], repeats: int = 1) -> float:
    """Best fp32 rate of a square matmul over ``repeats`` tries, in GFLOP/s (2 flops per
    multiply-add). Measured between the rounds too, so a busy moment does not lower it."""
    a, b = torch.randn(MATMUL_SIZE, MATMUL_SIZE), torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    torch.mm(a, b)
    best = min(seconds_of(lambda: torch.mm(a, b), clock) for _ in range(repeats))
    return 2 * MATMUL_SIZE ** 3 / best / 1e9


def seconds_of(fn: Callable[[], object], clock: Callable[[], float]) -> float:
    start = clock()
    fn()
    return clock() - start


def training_step(model: nn.Module, images: torch.Tensor,
                  labels: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05, fused=True)
    model.train()

    def step() -> None:
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def same_function(ours: nn.Module, baseline: nn.Module, images: torch.Tensor) -> float:
    """Max abs difference of the two models' logits in eval mode."""
    ours.eval(), baseline.eval()
    with torch.no_grad():
        return (ours(images) - baseline(images)).abs().max().item()


def run_setting(setting: Setting, clock: Callable[[], float]) -> dict[str, object]:
    config = setting.config
    torch.manual_seed(0)
    ours = iformer.create_model(config)
    baseline = ReferenceStyleIFormer(config)
    baseline.load_state_dict(ours.state_dict(), strict=True)
    images = torch.randn(setting.batch, config.in_chans, *config.input_size)
    labels = torch.randint(0, config.num_classes, (setting.batch,))
    error = same_function(ours, baseline, images)
    if error > 1e-4:
        raise SystemExit(f"{setting.name}: baseline and model differ by {error}; not timing.")
    steps = {"baseline": training_step(baseline, images, labels),
             "ours": training_step(ours, images, labels)}
    for step in steps.values():  # warm-up: allocator, oneDNN primitives
        step(), step()
    rounds: dict[str, list[float]] = {name: [] for name in steps}
    peak = 0.0
    for _ in range(setting.rounds):
        peak = max(peak, matmul_gflops(clock))
        for name, step in steps.items():
            seconds = seconds_of(lambda s=step: [s() for _ in range(setting.steps_per_round)],
                               clock)
            rounds[name].append(setting.steps_per_round * setting.batch / seconds)
    flops_per_image = 2 * 3 * iformer.count_flops(config)
    return dict(setting=setting, error=error, flops_per_image=flops_per_image, peak=peak,
                best={n: max(v) for n, v in rounds.items()},
                median={n: statistics.median(v) for n, v in rounds.items()})


def print_table(threads: int) -> None:
    torch.set_num_threads(threads)
    # One thread: CPU time of this process. More: the wall clock.
    clock, clock_name = ((time.process_time, "CPU time") if threads == 1
                         else (time.perf_counter, "wall clock"))
    print(f"\nTraining throughput (forward + backward + AdamW(fused) step), torch "
          f"{torch.__version__}, {threads} thread(s), {clock_name}, float32, eager")
    peak = matmul_gflops(clock, repeats=5)
    results = [run_setting(setting, clock) for setting in settings()]
    peak = max([peak] + [result["peak"] for result in results])
    print(f"fp32 matmul peak ({MATMUL_SIZE}x{MATMUL_SIZE}, best over the run): "
          f"{peak:.0f} GFLOP/s")
    header = (f"{'setting':<27} {'batch':>5} {'max err':>8} {'baseline img/s':>14} "
              f"{'ours img/s':>10} {'ratio':>6} {'(median)':>8} {'ours GFLOP/s':>12} "
              f"{'of peak':>7}")
    print(header)
    print("-" * len(header))
    for result in results:
        setting, best, median = result["setting"], result["best"], result["median"]
        gflops = best["ours"] * result["flops_per_image"] / 1e9
        print(f"{setting.name:<27} {setting.batch:>5} {result['error']:>8.1e} "
              f"{best['baseline']:>14.1f} {best['ours']:>10.1f} "
              f"{best['ours'] / best['baseline']:>5.2f}x "
              f"{median['ours'] / median['baseline']:>7.2f}x {gflops:>12.1f} "
              f"{gflops / peak:>6.1%}")
    print("targets: ratio >= 1.3x at the proxy setting, >= 1.0x at 224 px")


def main(threads: list[int] | None = None) -> None:
    available = torch.get_num_threads()
    for count in threads or sorted({available, 1}, reverse=True):
        print_table(count)
    torch.set_num_threads(available)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", help="thread counts to run with")
    main(parser.parse_args().threads)
