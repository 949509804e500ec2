"""One-shot ramp search: train one weight-sharing supernet, then score many ramps by their
subnets with inherited weights.

- :mod:`.sampling`: which ramps each training step trains (uniform, fair, sandwich);
- :mod:`.optimizer`: AdamW that moves only the slots a step used;
- :mod:`.training`: :func:`train_supernet`, through the one engine, resumable;
- :mod:`.scoring`: :func:`score_ramps` on fixed validation images, with a cache;
- :mod:`.search`: the study's side of a one-shot search: the trials still to score, told
  as trained candidates are, proposed from an in-memory copy of the study.

May import: ``study``, ``training``, ``data``, ``errors``, ``attributes``, ``iformer``,
optuna. Never Ray or a command.
"""

from .sampling import STRATEGIES, RampSampler, extreme_ramps
from .scoring import SUPERNET, RampScore, score_ramps, validation_batches
from .settings import SupernetSettings
from .training import SupernetRun, train_supernet

__all__ = ["STRATEGIES", "SUPERNET", "RampSampler", "RampScore", "SupernetRun",
           "SupernetSettings", "extreme_ramps", "score_ramps",
           "train_supernet", "validation_batches"]
