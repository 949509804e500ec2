"""Zero-cost scores: rank ramps from one batch at initialisation, without training.

Three scores from the zero-cost proxy literature, each computed on the proxy model of a
ramp (the narrow iFormer at the proxy resolution) in well under a second:

- ``synflow``: sum over conv/linear weights of |w * dR/dw|, where R is the sum of the
  outputs of the network with every parameter made positive, fed an all-ones image, in
  float64 (Tanaka et al. 2020; Abdelfattah et al. 2021). Data-free.
- ``naswot``: log-determinant of the kernel K[i, j] = number of GELU units on which images
  i and j agree in sign (the binary activation codes of one batch; Mellor et al. 2021, the
  jacob_cov family). Higher: the untrained network already tells the images apart.
- ``grad_norm``: sum over conv/linear weights of the L2 norm of the cross-entropy gradient
  of one labelled batch.

For all three, higher is taken to mean better. Whether any of them ranks ramps of this space
the way training does is what ``rampsearch fidelity`` measures; the iFormer initialises
layer scale of stages 3 and 4 at 1e-6, so at initialisation those blocks (where most of a
ramp's choices are) are close to the identity, which these scores cannot see past.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
from torch import nn

import iformer
from iformer import IFormerConfig

from ..data import ProxyData
from .proxy import (
    DeviceImages,
    ProxySettings,
    cpu_threads,
    fit_data,
    normalize,
    proxy_model_config,
    seeded,
)

ZERO_COST_SCORES = ("synflow", "naswot", "grad_norm")
SCORE_BATCH_SIZE = 64


def weighted_layers(model: nn.Module) -> Iterator[nn.Module]:
    """The conv and linear layers, whose weights the scores sum over."""
    return (m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def synflow(model: nn.Module, image_shape: tuple[int, int, int]) -> float:
    """Synaptic flow of ``model`` for an all-ones input of (C, H, W) ``image_shape``.

    Works on a float64 copy with every parameter replaced by its absolute value (so no sign
    cancels), in eval mode; ``model`` itself is not changed."""
    positive = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for parameter in positive.parameters():
            parameter.abs_()
    positive.zero_grad(set_to_none=True)
    ones = torch.ones((1, *image_shape), dtype=torch.float64)
    positive(ones).sum().backward()
    with torch.no_grad():
        return sum(float((layer.weight * layer.weight.grad).abs().sum())
                   for layer in weighted_layers(positive) if layer.weight.grad is not None)


def naswot(model: nn.Module, images: torch.Tensor) -> float:
    """log|det K| of the Hamming-agreement kernel of the batch's binary GELU codes."""
    batch = images.shape[0]
    kernel = torch.zeros((batch, batch), dtype=torch.float64)

    def add_codes(_module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: object) -> None:
        codes = (inputs[0].detach().reshape(batch, -1) > 0).double()
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

    handles = [m.register_forward_hook(add_codes) for m in model.modules()
               if isinstance(m, nn.GELU)]
    try:
        model.eval()
        with torch.no_grad():
            model(images)
    finally:
        for handle in handles:
            handle.remove()
    return float(torch.linalg.slogdet(kernel).logabsdet)


def grad_norm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Sum of the per-layer L2 norms of the cross-entropy gradient of one batch."""
    model.train()
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(images), labels).backward()
    total = sum(float(layer.weight.grad.norm()) for layer in weighted_layers(model)
                if layer.weight.grad is not None)
    model.zero_grad(set_to_none=True)
    return total


def score_batch(data: ProxyData, settings: ProxySettings, seed: int,
                batch_size: int = SCORE_BATCH_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed labelled batch of the proxy's training images, normalised, chosen by seed."""
    data = fit_data(data, settings)
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(data.train_labels), generator=generator)[:batch_size].numpy()
    batch = DeviceImages(data.train_images[index], data.train_labels[index], torch.device("cpu"))
    return normalize(batch.images, batch.mean, batch.inv_std).contiguous(), batch.labels


def zero_cost_scores(config: IFormerConfig, data: ProxyData, settings: ProxySettings,
                     seed: int = 0, num_threads: int | None = None) -> dict[str, float]:
    """Every zero-cost score of the proxy model of ``config`` (a full-size config with its
    ramp), initialised with ``seed`` and scored on the batch that ``seed`` picks, on the CPU
    with ``num_threads`` torch threads (default: torch's). The same arguments give the same
    scores."""
    model_config = proxy_model_config(config, settings, data.num_classes)
    images, labels = score_batch(data, settings, seed)
    with cpu_threads(num_threads), seeded(seed, torch.device("cpu")):
        model = iformer.create_model(model_config)
        return {
            "synflow": synflow(model, tuple(images.shape[1:])),
            "naswot": naswot(model, images),
            "grad_norm": grad_norm(model, images, labels),
        }
