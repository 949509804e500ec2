"""Cost of a supernet subnet against the stand-alone model of the same ramp, side by side.

For each setting the stand-alone model loads the subnet's extracted weights and must give
the same logits before anything is timed. Then the two alternate in rounds of forward +
backward (a training step without the optimizer) and of no-grad forward (scoring a ramp),
and each model's best round counts: rounds that other work on the machine disturbs only get
slower. The ratio is supernet time over stand-alone time (1.00x: no overhead).

One thread by default, timed by the process's CPU time, which other jobs on a shared machine
disturb far less than the wall clock; more threads are timed by the wall clock.

    python -m benchmarks.bench_supernet [--threads N ...]
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
from benchmarks.bench_model_speed import proxy_config, seconds_of


@dataclass(frozen=True)
class Setting:
    name: str
    config: iformer.IFormerConfig
    ramp: list[int]
    batch: int
    rounds: int


def settings() -> list[Setting]:
    small = iformer.preset("small")
    proxy = proxy_config(small)
    heads = [n for n, depth in zip(small.num_heads, small.depths) for _ in range(depth)]
    # Pure conv and pure attention blocks in turn: both branch-less ends of every stage.
    ends = [n if block % 2 else 0 for block, n in enumerate(heads)]
    return [
        Setting("proxy 64 px, paper ramp", proxy, small.attention_heads, batch=64, rounds=8),
        Setting("proxy 64 px, 0/n in turn", proxy, ends, batch=64, rounds=8),
        Setting("small 224 px, paper ramp", small, small.attention_heads, batch=4, rounds=3),
    ]


def forward_backward(model: nn.Module, images: torch.Tensor,
                     labels: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
    return step


def forward_only(model: nn.Module, images: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        with torch.no_grad():
            model(images)
    return step


def run_setting(setting: Setting, clock: Callable[[], float]) -> dict[str, object]:
    torch.manual_seed(0)
    supernet = iformer.IFormerSupernet(setting.config).set_ramp(setting.ramp)
    standalone = supernet.extract_subnet()
    images = torch.randn(setting.batch, 3, *setting.config.input_size)
    labels = torch.randint(0, setting.config.num_classes, (setting.batch,))
    supernet.eval(), standalone.eval()
    with torch.no_grad():
        error = (supernet(images) - standalone(images)).abs().max().item()
    if error > 1e-4:
        raise SystemExit(f"{setting.name}: subnet and stand-alone differ by {error}; not timing.")
    models = {"standalone": standalone, "supernet": supernet}
    times: dict[tuple[str, str], list[float]] = {}
    for mode in ("train", "eval"):
        steps = {}
        for name, model in models.items():
            model.train(mode == "train")
            steps[name] = (forward_backward(model, images, labels) if mode == "train"
                           else forward_only(model, images))
        for step in steps.values():  # warm-up: allocator, oneDNN primitives
            step(), step()
        for _ in range(setting.rounds):
            for name, step in steps.items():
                times.setdefault((mode, name), []).append(seconds_of(step, clock))
    params = {name: sum(p.numel() for p in model.parameters()) for name, model in models.items()}
    return dict(setting=setting, error=error, params=params, times=times)


def print_table(threads: int) -> None:
    torch.set_num_threads(threads)
    clock, clock_name = ((time.process_time, "CPU time") if threads == 1
                         else (time.perf_counter, "wall clock"))
    print(f"\nSupernet subnet against the stand-alone model of its ramp, torch "
          f"{torch.__version__}, {threads} thread(s), {clock_name}, float32, eager; "
          f"best round (median of per-round ratios)")
    header = (f"{'setting':<26} {'batch':>5} {'max err':>8} {'params sup/sa':>14} "
              f"{'fwd+bwd sa':>10} {'supernet':>9} {'ratio':>13} {'fwd sa':>8} "
              f"{'supernet':>9} {'ratio':>13}")
    print(header)
    print("-" * len(header))
    for setting in settings():
        result = run_setting(setting, clock)
        times, params = result["times"], result["params"]
        cells = []
        for mode in ("train", "eval"):
            ours, theirs = times[(mode, "supernet")], times[(mode, "standalone")]
            ratios = [s / a for s, a in zip(ours, theirs)]
            cells.append(f"{min(theirs) * 1e3:>8.0f}ms {min(ours) * 1e3:>7.0f}ms "
                         f"{min(ours) / min(theirs):>5.2f}x ({statistics.median(ratios):.2f}x)")
        print(f"{setting.name:<26} {setting.batch:>5} {result['error']:>8.1e} "
              f"{params['supernet'] / 1e6:>7.1f}M/{params['standalone'] / 1e6:>5.1f}M "
              f"{cells[0]} {cells[1]}", flush=True)


def main(threads: list[int] | None = None) -> None:
    available = torch.get_num_threads()
    for count in threads or [1]:
        print_table(count)
    torch.set_num_threads(available)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", help="thread counts to run with")
    main(parser.parse_args().threads)
