"""Zero-cost scores against proxy training: seconds per ramp, side by side in one run.

Every score runs on the default proxy model (iformer_small at ProxySettings() width and
resolution) of the five baseline ramps, with one batch of Fashion-MNIST (synthetic if it is
not installed). Beside them: one training step of the same model, from which the cost of a
whole default proxy trial is projected (steps per epoch x epochs; evaluation left out, so the
projection is low).
"""

from __future__ import annotations

import statistics
import time

import torch
from timm.optim import create_optimizer_v2
from torch import nn

import iformer
from rampsearch.errors import UserError
from rampsearch.training.proxy import ProxySettings, cpu_threads, load_data_for, proxy_model_config
from rampsearch.training.zero_cost import grad_norm, naswot, score_batch, synflow
from search_spaces import baseline_ramps

REPEATS = 3
TRAIN_STEPS = 10


def load_data(settings: ProxySettings):
    try:
        return load_data_for("fashion-mnist", settings), "fashion-mnist"
    except UserError:
        return load_data_for("synthetic", settings), "synthetic"


def median_seconds(run, repeats: int = REPEATS) -> float:
    run()  # warm-up: first calls allocate
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def train_step_seconds(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                       settings: ProxySettings) -> float:
    optimizer = create_optimizer_v2(model, opt="adamw", lr=settings.lr,
                                    weight_decay=settings.weight_decay)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)

    def step() -> None:
        loss = loss_fn(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    step()
    started = time.perf_counter()
    for _ in range(TRAIN_STEPS):
        step()
    return (time.perf_counter() - started) / TRAIN_STEPS


def main() -> None:
    settings = ProxySettings()
    data, source = load_data(settings)
    images, labels = score_batch(data, settings, seed=0, batch_size=settings.batch_size)
    base = iformer.preset("small")
    trial_steps = settings.steps_per_epoch * settings.epochs
    shape = tuple(images.shape[1:])
    print(f"iformer_small proxy: width {settings.width}, {settings.resolution}px, batch "
          f"{settings.batch_size} of {source}; {torch.__version__}")
    for threads in (1, 2):
        print(f"\n{threads} thread(s): seconds per ramp (median of {REPEATS})")
        print(f"{'ramp':<24} {'synflow':>8} {'naswot':>8} {'grad_norm':>9} {'all 3':>7} "
              f"{'train step':>10} {'trial (proj.)':>13} {'trial / all 3':>13}")
        with cpu_threads(threads):
            for name, ramp in baseline_ramps(base).items():
                config = proxy_model_config(base.with_ramp(ramp), settings, data.num_classes)
                model = iformer.create_model(config)
                seconds = {
                    "synflow": median_seconds(lambda m=model: synflow(m, shape)),
                    "naswot": median_seconds(lambda m=model: naswot(m, images)),
                    "grad_norm": median_seconds(lambda m=model: grad_norm(m, images, labels)),
                }
                total = sum(seconds.values())
                step = train_step_seconds(model, images, labels, settings)
                trial = step * trial_steps
                print(f"{name:<24} {seconds['synflow']:>8.3f} {seconds['naswot']:>8.3f} "
                      f"{seconds['grad_norm']:>9.3f} {total:>7.3f} {step:>10.3f} "
                      f"{trial:>12.0f}s {trial / total:>12.0f}x")


if __name__ == "__main__":
    main()
