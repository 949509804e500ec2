"""AdamW that moves only the supernet slots a step trained.

A subnet leaves the other slots of a shared parameter out of the graph: their gradient is
zero, yet AdamW would still shrink them by weight decay and move them by their old momentum,
so a head count trained rarely would drift between its own steps. Here each step updates,
decays and counts (for the bias correction) only the entries of the slots its ramps used,
as if every slot had an optimizer of its own. Parameters outside the mixers are always
used and get plain AdamW; a parameter no ramp used has no gradient and is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from iformer.supernet import IFormerSupernet

# A step's used entries of each masked parameter; parameters not in it are wholly used.
SlotMasks = Mapping[torch.Tensor, torch.Tensor]


class SlotMaskedAdamW(torch.optim.Optimizer):
    """torch's AdamW (decoupled weight decay, no amsgrad) with per-entry step counts, over
    the entries ``used_slots()`` marks at each step. With every entry marked it computes
    what ``torch.optim.AdamW`` computes."""

    def __init__(self, params: Iterable[Any], used_slots: Callable[[], SlotMasks],
                 lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.used_slots = used_slots

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        masks = self.used_slots()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, decay = group["lr"], group["eps"], group["weight_decay"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["steps"] = torch.zeros_like(param)
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                mask = masks.get(param)
                adamw_update(param, param.grad, state, mask, lr, beta1, beta2, eps, decay)
        return loss


def adamw_update(param: torch.Tensor, grad: torch.Tensor, state: dict[str, torch.Tensor],
                 mask: torch.Tensor | None, lr: float, beta1: float, beta2: float, eps: float,
                 decay: float) -> None:
    """One AdamW update of the entries ``mask`` marks (all when None), in place."""
    step, exp_avg, exp_avg_sq = state["steps"], state["exp_avg"], state["exp_avg_sq"]
    new_step = step + 1
    new_avg = exp_avg.lerp(grad, 1 - beta1)
    new_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * grad * grad
    correction1 = 1 - beta1 ** new_step
    correction2 = (1 - beta2 ** new_step).sqrt()
    denom = new_avg_sq.sqrt() / correction2 + eps
    new_param = param * (1 - lr * decay) - lr * new_avg / (correction1 * denom)
    if mask is None:
        updates = ((step, new_step), (exp_avg, new_avg), (exp_avg_sq, new_avg_sq),
                   (param, new_param))
        for target, value in updates:
            target.copy_(value)
        return
    for target, value in ((step, new_step), (exp_avg, new_avg), (exp_avg_sq, new_avg_sq),
                          (param, new_param)):
        target.copy_(torch.where(mask, value, target))


class SlotMaskCache:
    """The entries of each mixer parameter that a block's head count uses, built once per
    (block, head count) from the supernet's own slot selections."""

    def __init__(self, supernet: IFormerSupernet) -> None:
        self.mixers = [block.attn for _, block in supernet._named_blocks()]
        self._masks: dict[tuple[int, int], list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def block_masks(self, block: int, heads: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        key = (block, heads)
        if key not in self._masks:
            self._masks[key] = selection_masks(self.mixers[block], heads)
        return self._masks[key]

    def used_by(self, ramps: Sequence[Sequence[int]]) -> dict[torch.Tensor, torch.Tensor]:
        """Every mixer parameter's entries used by any of ``ramps`` (one training step)."""
        used: dict[torch.Tensor, torch.Tensor] = {}
        for ramp in ramps:
            for block, heads in enumerate(ramp):
                for param, mask in self.block_masks(block, heads):
                    if param in used:
                        used[param] = used[param] | mask
                    else:
                        used[param] = mask
        # A parameter no ramp touched is absent here but has no gradient either.
        for mixer in self.mixers:
            for param in mixer.parameters():
                used.setdefault(param, torch.zeros_like(param, dtype=torch.bool))
        return used


def selection_masks(mixer: torch.nn.Module, heads: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(parameter, boolean mask of the entries a split with ``heads`` reads) for every
    parameter of a supernet mixer, from the views its slot selections take."""
    params = {param.data_ptr(): param for param in mixer.parameters()}
    masks = {ptr: torch.zeros_like(param, dtype=torch.bool) for ptr, param in params.items()}
    with torch.no_grad():
        for slots in mixer.selections(heads).values():
            for view in slots.views:
                owner = next(p for p in params.values()
                             if p.untyped_storage().data_ptr() == view.untyped_storage().data_ptr())
                mask = masks[owner.data_ptr()]
                torch.as_strided(mask, view.shape, view.stride(),
                                 view.storage_offset() - owner.storage_offset()).fill_(True)
    return [(params[ptr], mask) for ptr, mask in masks.items()]
