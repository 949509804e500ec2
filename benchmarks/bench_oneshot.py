"""Ramps scored per CPU-minute: the one-shot supernet against stand-alone proxy trainings.

Side by side in one run, on Imagenette where it is prepared (else synthetic images), with
the data set's default ProxySettings and one torch thread:

1. stand-alone: ``train_proxy`` of ``--standalone`` ramps; one ramp per training.
2. one-shot: ``train_supernet`` (``--epochs`` epochs of the default fair strategy) once,
   then ``score_ramps`` on ``--scored`` distinct ramps; the training is amortised over
   ``--ramps`` ramps, whose scoring cost is the measured cost per scored ramp times their
   number (scoring a ramp costs the same whatever else was scored).

CPU-seconds are the process's (``time.process_time``), so other work on the machine slows
the wall clock, not these numbers (much).

    python -m benchmarks.bench_oneshot [--quick] [--ramps 1000] [--epochs 4]
"""

from __future__ import annotations

import argparse
import os
import random
import time

import torch

import iformer
from rampsearch.data import load_proxy_data
from rampsearch.errors import UserError
from rampsearch.oneshot import SupernetSettings, score_ramps, train_supernet, validation_batches
from rampsearch.oneshot.sampling import uniform_ramp
from rampsearch.training.proxy import DATA_SUBSET_SEED, default_settings, train_proxy
from search_spaces import load_space, parse_budget

QUICK_ENV = "RAMPSEARCH_BENCH_QUICK"


def load_data(settings_for):
    """(source, settings, data): Imagenette where prepared, else synthetic."""
    for source in ("imagenette", "synthetic"):
        settings = settings_for(source)
        try:
            data = load_proxy_data(source, settings.resolution, settings.train_samples,
                                   settings.val_samples, seed=DATA_SUBSET_SEED)
        except UserError:
            continue
        return source, settings, data
    raise RuntimeError("no proxy data")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 supernet epoch, 1 stand-alone ramp, 20 scored ramps")
    parser.add_argument("--ramps", type=int, default=1000, help="ramps the training amortises over")
    parser.add_argument("--epochs", type=int, default=4, help="supernet epochs")
    parser.add_argument("--scored", type=int, default=50, help="ramps actually scored")
    parser.add_argument("--standalone", type=int, default=2, help="stand-alone trainings")
    args, _ = parser.parse_known_args(argv)  # `python -m benchmarks TOPIC` passes topics
    if args.quick or os.environ.get(QUICK_ENV, "") not in ("", "0"):
        args.epochs, args.scored, args.standalone = 1, 20, 1
    torch.set_num_threads(1)
    space, budget = load_space("monotone"), parse_budget("4.8GFLOPs")
    source, proxy, data = load_data(default_settings)
    supernet = SupernetSettings(epochs=args.epochs)
    print(f"one-shot vs stand-alone, iformer_small monotone at {budget}, {source} "
          f"{proxy.train_samples} train / {proxy.val_samples} val images at {proxy.resolution} "
          f"px, width {proxy.width}, 1 thread, torch {torch.__version__}, load average "
          f"{os.getloadavg()[0]:.2f}")
    rng = random.Random(0)
    ramps = list(dict.fromkeys(tuple(uniform_ramp(space, budget, rng))
                               for _ in range(4 * args.scored)))[:args.scored]

    standalone_cpu = []
    for ramp in ramps[:args.standalone]:
        started = time.process_time()
        result = train_proxy(iformer.preset("iformer_small").with_ramp(list(ramp)), data, proxy,
                             device="cpu", num_threads=1)
        standalone_cpu.append(time.process_time() - started)
        print(f"  stand-alone ramp of {space.flops(ramp) / 1e9:.3f} GFLOPs: "
              f"{standalone_cpu[-1]:.1f} CPU-s, val loss {result.val_loss:.4f}", flush=True)
    per_standalone = sum(standalone_cpu) / len(standalone_cpu)

    run = train_supernet(space.base, space, budget, data, proxy, supernet, device="cpu",
                         num_threads=1)
    print(f"  supernet {supernet.strategy}, {args.epochs} epochs: {run.cpu_s:.1f} CPU-s, "
          f"val loss of the paper's ramp {run.result.val_loss:.4f}", flush=True)
    batches = validation_batches(data, proxy, supernet, torch.device("cpu"))
    started = time.process_time()
    scores = score_ramps(run.supernet, ramps, batches, num_threads=1)
    per_score = (time.process_time() - started) / len(scores)
    print(f"  scoring {len(scores)} ramps on {scores[0].images} images: {per_score:.2f} "
          f"CPU-s a ramp", flush=True)

    oneshot_cpu = run.cpu_s + args.ramps * per_score
    oneshot_rate = args.ramps / (oneshot_cpu / 60)
    standalone_rate = 60 / per_standalone
    print()
    print(f"{'strategy':<34} {'CPU-s a ramp':>12} {'ramps / CPU-min':>16}")
    print(f"{'stand-alone train_proxy':<34} {per_standalone:>12.1f} {standalone_rate:>16.2f}")
    print(f"{f'one-shot, training over {args.ramps} ramps':<34} "
          f"{oneshot_cpu / args.ramps:>12.2f} {oneshot_rate:>16.2f}")
    print(f"one-shot / stand-alone: {oneshot_rate / standalone_rate:.1f}x ramps per CPU-minute "
          f"(scoring alone: {per_standalone / per_score:.0f}x)")


if __name__ == "__main__":
    main()
