"""Which ramps a supernet training step trains: uniform, fair or sandwich.

Every sampler draws through the search space's own ``propose`` machinery, so every ramp it
returns is in the space and within the budget by construction (the space narrows each
parameter to the values that still have a completion within the budget). The samplers only
choose which value to ask for; the space clamps the request to what it allows.

- ``uniform``: ``SearchSpace.sample`` as it is (the space's own distribution).
- ``fair``: every head count of every block as equally often as the space and budget allow
  (FairNAS's aim; a budget below the mean cost of uniform head counts rules out exact
  equality). Each step draws one ramp through the *focus*, the (block, head count) pair used
  least so far, and ``CANDIDATES`` uniform ramps, and trains the one whose head counts were
  trained least (the focus's, unless a uniform one is rarer). The focused ramp asks the
  focus block for its count and the others for random counts. Earlier draws or the budget
  can rule the focus out, so it asks again with the others at the focus's attention share
  (rounded down before it and up after it: the most permissive request under monotone
  ramps), then at their cheapest counts (the most permissive under a budget). A focus none
  of these reach is set aside in ``unreached`` and not asked again. Measured at 4.8 GFLOPs:
  in 600 steps fair trained 151 (block, head count) pairs of the monotone space, as many as
  20,000 uniform draws reach, where 600 uniform steps trained 142; in the free space both
  reach all 171, and the rarest pair was trained 44 times under fair, 24 under uniform.
- ``sandwich``: the greedy largest- and smallest-attention ramps of the space (every
  parameter asks for its highest, resp. lowest, value), plus ``random_ramps`` uniform ones,
  every step (BigNAS's sandwich rule).

A sampler is seeded, and its state (``state_dict``) resumes it exactly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from search_spaces import Budget, ChainSpace, SearchSpace

from ..errors import UserError

STRATEGIES = ("uniform", "fair", "sandwich")
MAX_DRAWS = 1000  # draws of an infeasible proposal (a gap in a narrowed range) before giving up
# Fair: uniform ramps drawn beside the focused one each step; the rarest of them is trained.
# Measured on monotone and free at 4.8 GFLOPs over 600 steps: without them the requests
# squeeze the blocks drawn last into their cheapest counts (free: least-used head count
# trained 15 times, most-used 464); with 8 the spread is 44..162 (uniform 24..164).
CANDIDATES = 8

# A request: (parameter name, lowest allowed value, highest allowed value) -> the value wanted.
Request = Callable[[str, float, float], float]


class RequestedParams:
    """A parameter source (an Optuna trial's stand-in for ``SearchSpace.propose``) that
    answers every parameter with the allowed value nearest to what ``request`` asks for."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.user_attrs: dict[str, Any] = {}

    def suggest_int(self, name: str, low: int, high: int) -> int:
        return int(min(max(round(self.request(name, low, high)), low), high))

    def suggest_float(self, name: str, low: float, high: float, *,
                      step: float | None = None) -> float:
        value = min(max(self.request(name, low, high), low), high)
        if step is not None:  # back onto the parameter's grid
            value = low + round((value - low) / step) * step
        return value

    # What ``propose`` records on a trial; nothing to record here.
    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value

    def set_constraint(self, key: str, value: float) -> None:
        pass


def requested_ramp(space: SearchSpace, budget: Budget | None,
                   request: Request) -> list[int] | None:
    """The ramp the space draws when every parameter asks ``request``; None when it is over
    the budget (a request fell into a gap of a narrowed range)."""
    source = RequestedParams(request)
    if budget is None:
        return list(space.suggest(source))
    proposal = space.propose(source, budget)
    return list(proposal.ramp) if proposal.feasible else None


def uniform_ramp(space: SearchSpace, budget: Budget | None, rng: random.Random) -> list[int]:
    """One ramp of the space's own sampler, within the budget."""
    for _ in range(MAX_DRAWS):
        proposal = space.sample(rng, budget)
        if proposal.feasible:
            return list(proposal.ramp)
    raise UserError(f"{MAX_DRAWS} ramps drawn from space {space.name} were over the budget "
                    f"{budget}; raise the budget or choose a space with more ramps within it.")


def attention_share(ramp: Sequence[int], num_heads: Sequence[int]) -> float:
    """The summed share of each block's channels on attention (a/n): orders ramps from the
    least to the most attention."""
    return sum(a / n for a, n in zip(ramp, num_heads))


def extreme_ramps(space: SearchSpace, budget: Budget | None) -> tuple[list[int], list[int]]:
    """(smallest-attention, largest-attention) ramps of the space within the budget: every
    parameter asks for its lowest, resp. highest value, the space clamps each to what the
    budget and the earlier draws allow (greedy, in the space's drawing order)."""
    smallest = requested_ramp(space, budget, lambda name, low, high: low)
    largest = requested_ramp(space, budget, lambda name, low, high: high)
    if smallest is None or largest is None:
        raise UserError(f"space {space.name} has no greedy extreme ramp within {budget}; use "
                        f"strategy uniform or fair, or raise the budget.")
    num_heads = [spec.num_heads for spec in space.base.blocks()]
    return sorted((smallest, largest), key=lambda ramp: attention_share(ramp, num_heads))


class RampSampler:
    """The ramps of each training step under one strategy, seeded and resumable."""

    def __init__(self, space: SearchSpace, budget: Budget | None, strategy: str, seed: int,
                 random_ramps: int = 2) -> None:
        if strategy not in STRATEGIES:
            raise UserError(f"ramp sampling strategy {strategy!r} is not known; use one of "
                            f"{', '.join(STRATEGIES)}.")
        self.space, self.budget, self.strategy = space, budget, strategy
        self.random_ramps = random_ramps
        self.rng = random.Random(seed)
        self.fair = FairCounts(space, budget) if strategy == "fair" else None
        self.extremes = extreme_ramps(space, budget) if strategy == "sandwich" else None

    def next_ramps(self) -> list[list[int]]:
        """The ramps of the next step (one, but for sandwich)."""
        if self.strategy == "uniform":
            return [uniform_ramp(self.space, self.budget, self.rng)]
        if self.strategy == "fair":
            return [self.fair.next_ramp(self.rng)]
        smallest, largest = self.extremes
        return [list(largest), list(smallest)] + [
            uniform_ramp(self.space, self.budget, self.rng) for _ in range(self.random_ramps)]

    def largest_attention_ramp(self) -> list[int]:
        return list((self.extremes or extreme_ramps(self.space, self.budget))[1])

    def state_dict(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        state: dict[str, Any] = {"strategy": self.strategy,
                                 "rng": [version, list(internal), gauss]}
        if self.fair is not None:
            state["fair"] = self.fair.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["strategy"] != self.strategy:
            raise UserError(f"the checkpoint's ramps were sampled by strategy "
                            f"{state['strategy']!r}, not {self.strategy!r}; resume with the "
                            f"same strategy or start a new checkpoint.")
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        if self.fair is not None:
            self.fair.load_state_dict(state["fair"])


class FairCounts:
    """How often each head count of each searched block was trained, and the fair draw.

    Counts are kept per parameter of a chain space (one block in free and monotone spaces,
    the searched blocks of a stage in stagewise ones)."""

    def __init__(self, space: SearchSpace, budget: Budget | None) -> None:
        if not isinstance(space, ChainSpace):
            raise UserError(f"strategy fair needs a space whose parameters are head counts "
                            f"(free, monotone or stagewise); space {space.name} is "
                            f"{space.family}: use strategy uniform or sandwich.")
        self.space, self.budget = space, budget
        self.decisions = {d.name: d for d in space.decisions if d.low < d.high}
        self.uses = {name: [0] * (d.high - d.low + 1) for name, d in self.decisions.items()}
        self.unreached: set[tuple[str, int]] = set()
        table = space.cost_table(budget.img_size if budget is not None else (224, 224))
        # Each parameter's cheapest head count, the request that leaves the most budget.
        self.cheapest = {name: min(range(d.low, d.high + 1), key=lambda v, d=d: sum(
            table.per_block[b][v] for b in d.blocks)) for name, d in self.decisions.items()}

    def focus(self, rng: random.Random) -> tuple[str, int] | None:
        """The least-used (parameter, head count) pair not set aside (ties at random)."""
        pairs = [(name, decision.low + i, count) for name, decision in self.decisions.items()
                 for i, count in enumerate(self.uses[name])
                 if (name, decision.low + i) not in self.unreached]
        if not pairs:
            return None
        fewest = min(count for _, _, count in pairs)
        return rng.choice([(name, value) for name, value, count in pairs if count == fewest])

    def next_ramp(self, rng: random.Random) -> list[int]:
        candidates = [uniform_ramp(self.space, self.budget, rng) for _ in range(CANDIDATES)]
        focus = self.focus(rng)
        if focus is not None:
            focused = self.focused_ramp(*focus, rng)
            if focused is None:
                self.unreached.add(focus)
            else:
                candidates.insert(0, focused)
        ramp = max(candidates, key=self.rarity)  # the first of equals: the focus
        self.count(ramp)
        return ramp

    def focused_ramp(self, name: str, value: int, rng: random.Random) -> list[int] | None:
        """A ramp whose parameter ``name`` is ``value``; None if no request reached it."""
        focus = self.decisions[name]
        share = value / focus.num_heads

        def at_share(n: str, low: float, high: float) -> float:
            # No more of the focus's share before it, no less after: a monotone completion.
            heads = share * self.decisions[n].num_heads
            before = self.decisions[n].blocks[0] < focus.blocks[0]
            return math.floor(heads) if before else math.ceil(heads)

        others: list[Request] = [
            lambda n, low, high: rng.randint(int(low), int(high)),
            at_share,
            lambda n, low, high: self.cheapest[n],
        ]
        for other in others:
            ramp = requested_ramp(
                self.space, self.budget,
                lambda n, low, high, other=other: value if n == name else other(n, low, high))
            if ramp is not None and self.value_of(name, ramp) == value:
                return ramp
        return None

    def rarity(self, ramp: Sequence[int]) -> float:
        """High when the ramp's head counts were seldom trained so far."""
        return sum(1 / (1 + self.uses[name][self.value_of(name, ramp) - decision.low])
                   for name, decision in self.decisions.items())

    def value_of(self, name: str, ramp: Sequence[int]) -> int:
        return ramp[self.decisions[name].blocks[0]]

    def count(self, ramp: Sequence[int]) -> None:
        for name, decision in self.decisions.items():
            self.uses[name][self.value_of(name, ramp) - decision.low] += 1

    def state_dict(self) -> dict[str, Any]:
        return {"uses": {name: list(c) for name, c in self.uses.items()},
                "unreached": sorted([name, value] for name, value in self.unreached)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.uses = {name: list(c) for name, c in state["uses"].items()}
        self.unreached = {(name, int(value)) for name, value in state["unreached"]}
