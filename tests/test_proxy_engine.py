"""The engine knows nothing of the proxy recipe: any model, optimizer and batches will do."""

from __future__ import annotations

import torch
from torch import nn

from rampsearch.engine import TrainingPlan, run_training


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
