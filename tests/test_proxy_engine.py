"""The engine knows nothing of the proxy recipe: any model, optimizer and batches will do."""

from __future__ import annotations

import torch
from torch import nn

from rampsearch.training.engine import TrainingPlan, run_training


def linear_plan(epochs: int, lr: float, poisoned_epoch: int | None = None) -> TrainingPlan:
    """A linear classifier on two Gaussian blobs, fed by plain generator functions."""
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[2.0, 0.0], [-2.0, 0.0]])
    labels = torch.arange(400) % 2
    points = centres[labels] + torch.randn(400, 2, generator=generator)
    torch.manual_seed(0)
    model = nn.Linear(2, 2)

    def train_batches(epoch: int):
        for start in range(0, 300, 50):
            batch = points[start:start + 50]
            if epoch == poisoned_epoch and start == 100:
                batch = batch.clone()
                batch[3, 0] = float("inf")  # one corrupt sample in the third batch
            yield batch, labels[start:start + 50]

    def val_batches():
        yield points[300:], labels[300:]

    return TrainingPlan(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=lr),
                        train_loss=nn.CrossEntropyLoss(), train_batches=train_batches,
                        val_batches=val_batches, epochs=epochs, device=torch.device("cpu"))


def test_engine_trains_any_recipe_and_reports_every_epoch() -> None:
    reported = []
    result = run_training(linear_plan(epochs=3, lr=0.5), on_epoch=reported.append)
    assert result.status == "completed" and [m.epoch for m in reported] == [1, 2, 3]
    assert result.top1 > 90 and result.top5 == 100.0  # top-5 of two classes is everything
    assert reported[-1].train_loss < reported[0].train_loss


def test_engine_reports_divergence_instead_of_raising() -> None:
    reported = []
    result = run_training(linear_plan(epochs=3, lr=0.5, poisoned_epoch=1),
                          on_epoch=reported.append)
    assert result.status == "diverged"
    assert "training loss became nan in epoch 2 by step 3" in result.reason
    assert [m.epoch for m in reported] == [1] and result.epochs_run == 1
    assert result.top1 == 0.0


def test_engine_resumes_at_the_start_epoch_and_evaluates_an_ema() -> None:
    plan = linear_plan(epochs=4, lr=0.5)
    ema = nn.Linear(2, 2)  # stands in for the weights' average: evaluated, never trained
    before = [p.detach().clone() for p in ema.parameters()]
    seen_epochs: list[int] = []

    def train_batches(epoch: int):
        seen_epochs.append(epoch)
        yield from linear_plan(epochs=1, lr=0.5).train_batches(epoch)

    plan.train_batches, plan.start_epoch, plan.ema_model = train_batches, 2, ema
    result = run_training(plan)
    assert seen_epochs == [2, 3] and [m.epoch for m in result.history] == [3, 4]
    assert result.status == "completed" and result.epochs_run == 2
    assert all(m.ema_top1 is not None and 0 <= m.ema_top1 <= 100 for m in result.history)
    assert all(torch.equal(a, b) for a, b in zip(before, ema.parameters()))
    assert run_training(linear_plan(epochs=1, lr=0.5)).history[0].ema_top1 is None


def test_engine_sums_over_processes_before_dividing() -> None:
    """Two processes that saw the same batches: totals double, means stay."""
    sums: list[list[float]] = []

    def twice(values: list[float]) -> list[float]:
        sums.append(list(values))
        return [2 * v for v in values]

    alone = run_training(linear_plan(epochs=1, lr=0.5))
    plan = linear_plan(epochs=1, lr=0.5)
    plan.sum_over_processes = twice
    both = run_training(plan)
    assert len(sums) == 2 and sums[0][1] == 300 and sums[1][3] == 100  # images, val count
    assert both.history[0].images_per_s > 0
    assert (both.val_loss, both.top1) == (alone.val_loss, alone.top1)
    assert both.history[0].train_loss == alone.history[0].train_loss


def test_engine_ends_a_nan_validation_loss_as_diverged() -> None:
    plan = linear_plan(epochs=2, lr=0.5)
    plan.val_batches = lambda: iter([(torch.full((4, 2), float("nan")), torch.zeros(4).long())])
    reported = []
    result = run_training(plan, on_epoch=reported.append)
    assert result.status == "diverged" and reported == []
    assert "validation loss became nan after epoch 1" in result.reason
