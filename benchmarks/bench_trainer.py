"""Proxy trainer speed and quality on Fashion-MNIST with the default ProxySettings.

1. Overhead: training images/s of ``train_proxy`` (on-device batches, augmentation, loss
   bookkeeping, NaN checks, schedule) against the bare model step (forward, backward,
   AdamW step on one fixed in-memory batch), measured in the same run on the same model.
2. One default trial of iformer_small: wall time and top-1, at 1 and 2 threads.
3. Top-1 after 4x the default epochs (slow; skipped with --quick or RAMPSEARCH_BENCH_QUICK=1).

    python -m benchmarks.bench_trainer [--quick] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import torch
from timm.optim import create_optimizer_v2
from torch import nn

import iformer
from rampsearch.training.proxy import (
    ProxySettings,
    load_data_for,
    normalize,
    proxy_model_config,
    seeded,
    train_proxy,
)

QUICK_ENV = "RAMPSEARCH_BENCH_QUICK"


def bare_step_images_per_s(settings: ProxySettings, num_classes: int, threads: int,
                           steps: int) -> float:
    """Forward, backward and AdamW step on one fixed batch, nothing else."""
    config = proxy_model_config(iformer.preset("iformer_small"), settings, num_classes)
    torch.set_num_threads(threads)
    with seeded(settings.seed, torch.device("cpu")):
        model = iformer.create_model(config).to(memory_format=torch.channels_last)
        optimizer = create_optimizer_v2(model, opt="adamw", lr=settings.lr,
                                        weight_decay=settings.weight_decay)
        loss_fn = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
        raw = torch.randint(0, 256, (settings.batch_size, settings.resolution,
                                     settings.resolution, 3), dtype=torch.uint8)
        inputs = normalize(raw, torch.full((1, 3, 1, 1), 127.0), torch.full((1, 3, 1, 1), 0.02))
        targets = torch.randint(0, num_classes, (settings.batch_size,))
        model.train()
        for step in range(steps + 3):
            if step == 3:  # the first steps allocate and pick kernels
                started = time.perf_counter()
            loss = loss_fn(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return steps * settings.batch_size / (time.perf_counter() - started)


def trainer_images_per_s(settings: ProxySettings, data, threads: int) -> float:
    """images/s of the training phase of one epoch of ``train_proxy`` (no evaluation)."""
    one_epoch = dataclasses.replace(settings, epochs=1, warmup_epochs=0.0)
    result = train_proxy(iformer.preset("iformer_small"), data, one_epoch, num_threads=threads)
    return result.history[0].images_per_s


def overhead_rows(settings: ProxySettings, data, threads: int) -> list[str]:
    steps = settings.steps_per_epoch
    # bare / trainer / bare, so drift in machine load shows up instead of biasing the ratio
    bare_before = bare_step_images_per_s(settings, data.num_classes, threads, steps)
    trainer = trainer_images_per_s(settings, data, threads)
    bare_after = bare_step_images_per_s(settings, data.num_classes, threads, steps)
    bare = (bare_before + bare_after) / 2
    return [f"{threads:>7}  {bare_before:>9.0f}  {bare_after:>9.0f}  {trainer:>11.0f}  "
            f"{trainer / bare:>13.3f}  {100 * (1 - trainer / bare):>9.1f}%"]


def trial_row(settings: ProxySettings, data, threads: int, label: str) -> str:
    started = time.perf_counter()
    result = train_proxy(iformer.preset("iformer_small"), data, settings, num_threads=threads)
    wall = time.perf_counter() - started
    per_epoch = " ".join(f"{m.top1:.1f}" for m in result.history)
    return (f"{label:<22} {threads:>7}  {settings.epochs:>6}  {wall:>7.1f}  {result.top1:>6.1f}  "
            f"{result.top5:>6.1f}  {per_epoch}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 4x-epochs trial")
    parser.add_argument("--threads", default="1,2", help="thread counts to measure (1,2)")
    args, _ = parser.parse_known_args(argv)  # `python -m benchmarks TOPIC` passes topics
    quick = args.quick or os.environ.get(QUICK_ENV, "") not in ("", "0")
    thread_counts = [int(t) for t in args.threads.split(",")]
    settings = ProxySettings()
    data = load_data_for("fashion-mnist", settings)
    print(f"proxy trainer, iformer_small at width {settings.width}, {settings.resolution} px, "
          f"batch {settings.batch_size}, {settings.train_samples} train / "
          f"{settings.val_samples} val images of fashion-mnist, torch {torch.__version__}")
    # Other processes on the CPUs change every number here; an active OpenMP wait policy
    # (the default) makes 2 threads many times slower when a core is busy elsewhere.
    print(f"load average at start {os.getloadavg()[0]:.2f}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}")
    print()
    print("threads  bare img/s  bare img/s  trainer img/s  trainer/bare  overhead")
    print("         (before)    (after)")
    for threads in thread_counts:
        for row in overhead_rows(settings, data, threads):
            print(row, flush=True)
    print()
    print(f"{'trial':<22} threads  epochs   wall s    top1    top5  top1 per epoch")
    for threads in thread_counts:
        print(trial_row(settings, data, threads, "default"), flush=True)
    if not quick:
        longer = dataclasses.replace(settings, epochs=4 * settings.epochs)
        print(trial_row(longer, data, thread_counts[-1], "4x epochs"), flush=True)
    else:
        print("(4x epochs skipped: --quick)")


if __name__ == "__main__":
    main()
