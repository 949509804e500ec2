"""Export one trained ramp of a study as a full-size model and the paper's training recipe.

``results/<study>/export/`` receives:

- ``model.yaml``: the complete IFormerConfig (ImageNet-1K: 1000 classes, 224 px, the paper's
  drop path for the model's size), for ``iformer.create_model_from_file``;
- ``train.yaml``: the paper's ImageNet recipe, keyed by timm train.py's argument names, with
  ``model`` + ``model_kwargs`` that make ``timm.create_model`` build the same network; read by
  ``rampsearch train`` and by timm's ``train.py --config``;
- ``README.md``: where the ramp came from and the exact commands to train it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

import iformer
from iformer import IFormerConfig

from ..attributes import INTERRUPTED, Attr, Role, Status, StudyAttr
from ..errors import UserError
from ..study import storage as study_lib
from ..training.recipe import (
    PAPER_PROCESSES,
    PAPER_TOTAL_BATCH,
    TrainRecipe,
    paper_size,
    recipe_for_model,
)

EXPORT_FOLDER = "export"
IMAGENET_CLASSES = 1000
IMAGENET_SIZE = 224
RANKED_ROLES = (Role.CANDIDATE, Role.BASELINE)  # what "best" chooses from
EXPORTABLE_ROLES = (Role.CANDIDATE, Role.BASELINE, Role.REEVAL)  # what --trial N may name


@dataclass(frozen=True)
class ExportedModel:
    """What was exported, for the command's summary."""

    trial: int
    role: str
    top1: float | None
    config: IFormerConfig
    recipe: TrainRecipe
    files: list[Path]


# ------------------------------------------------------------------------ choosing a trial
def trial_state(trial: FrozenTrial) -> str:
    """Why a trial can or cannot be exported, in words."""
    attrs = trial.user_attrs
    role = attrs.get(Attr.ROLE)
    if role == Role.REJECTED:
        return f"rejected before training ({attrs.get(Attr.END_REASON, 'over budget')})"
    if role not in EXPORTABLE_ROLES or Attr.RAMP not in attrs:
        return "not a trained ramp"
    if trial.state == TrialState.RUNNING:
        return "still running"
    if trial.state == TrialState.WAITING:
        return "queued, not started"
    if attrs.get(Attr.END_REASON) == INTERRUPTED:
        return "interrupted (the search was stopped while it trained)"
    status = attrs.get(Attr.STATUS)
    if status == Status.STOPPED:
        return (f"stopped early after epoch {attrs.get(Attr.EPOCHS_REACHED, '?')} of "
                f"{attrs.get(Attr.PROXY, {}).get('epochs', '?')}")
    if status in (Status.FAILED, Status.DIVERGED):
        return f"{status} ({attrs.get(Attr.END_REASON, status)})"
    if status == Status.COMPLETED and trial.state == TrialState.COMPLETE:
        return Status.COMPLETED
    return f"not completed (state {trial.state.name.lower()}, status {status})"


def is_exportable(trial: FrozenTrial) -> bool:
    return trial_state(trial) == Status.COMPLETED


def choose_trial(study: optuna.Study, which: str) -> FrozenTrial:
    """``best`` or a trial number. ``best`` is the leader the race's verdict names when the
    study raced its leaders (the seed-paired measurement), else the completed, within-budget
    candidate or baseline with the best proxy score by the study's objective (fewer FLOPs
    break ties)."""
    trials = study.get_trials(deepcopy=False)
    exportable = [t for t in trials if is_exportable(t)]
    listing = _listing(exportable)
    if which == "best":
        objective = study_lib.study_settings(study).objective
        ranked = [t for t in exportable if t.user_attrs.get(Attr.ROLE) in RANKED_ROLES
                  and t.user_attrs.get(Attr.WITHIN_BUDGET, False)
                  and t.user_attrs.get(objective.key) is not None]
        if not ranked:
            raise UserError(f"study {study.study_name!r} has no completed trial within its "
                            f"budget yet (exportable: {listing}). Wait for `rampsearch run` to "
                            f"finish some, or pass --trial N.")
        raced = race_best(study)
        if raced is not None and any(t.number == raced for t in ranked):
            return next(t for t in ranked if t.number == raced)
        return max(ranked, key=lambda t: (objective.sign() * t.user_attrs[objective.key],
                                          -t.user_attrs.get(Attr.FLOPS, 0), -t.number))
    try:
        number = int(which)
    except ValueError:
        raise UserError(f"--trial {which!r} is neither 'best' nor a trial number; pass "
                        f"--trial best or --trial N (exportable: {listing}).") from None
    chosen = next((t for t in trials if t.number == number), None)
    if chosen is None:
        raise UserError(f"study {study.study_name!r} has no trial {number} (it has "
                        f"{len(trials)} trials, numbered from 0); exportable: {listing}.")
    state = trial_state(chosen)
    if state != Status.COMPLETED:
        raise UserError(f"trial {number} cannot be exported: it is {state}, so its proxy score "
                        f"is not a full measurement. Exportable trials: {listing}.")
    return chosen


def race_best(study: optuna.Study) -> int | None:
    """The trial number of the candidate the study's race ended with (its verdict's), if it
    raced."""
    from search_spaces import load_space

    from ..ranking.leaderboard import leaderboard
    from ..ranking.race_results import stored_race

    settings = study.user_attrs.get(StudyAttr.SETTINGS)
    if not settings or StudyAttr.RACE not in study.user_attrs:
        return None
    space = load_space(settings["space"], base=settings["base"])
    race = stored_race(study, leaderboard(study, space.base.depths))
    if race is None or race.reported is None:
        return None
    return int(race.reported)  # the leader the race's verdict speaks of


def _listing(trials: list[FrozenTrial]) -> str:
    if not trials:
        return "none yet"
    shown = sorted(trials, key=lambda t: -(t.user_attrs.get(Attr.TOP1) or 0.0))[:12]
    parts = [f"{t.number} ({t.user_attrs.get(Attr.TOP1, float('nan')):.2f}%)" for t in shown]
    more = f" and {len(trials) - len(shown)} more" if len(trials) > len(shown) else ""
    return ", ".join(parts) + more


# ------------------------------------------------------------------------ the exported files
def imagenet_config(base: IFormerConfig, ramp: list[int]) -> IFormerConfig:
    """The full-size ImageNet model of a ramp: 1000 classes at 224 px, with the paper's drop
    path for its size."""
    size = paper_size(base)
    return dataclasses.replace(base.with_ramp(ramp), num_classes=IMAGENET_CLASSES,
                               img_size=IMAGENET_SIZE,
                               drop_path_rate=iformer.PAPER_DROP_PATH[size])


def train_yaml(recipe: TrainRecipe) -> str:
    header = (
        "# The paper's ImageNet-1K recipe for this model, written by `rampsearch export`.\n"
        "# Keys are the argument names of timm's train.py, so both of these read this file:\n"
        "#   rampsearch train train.yaml --data /path/to/imagenet\n"
        "#   python train.py --config train.yaml --data-dir /path/to/imagenet   (timm)\n"
        "# timm imports `iformer` through device_modules, which registers the model.\n"
        f"# batch_size is per process: the paper's total batch is {PAPER_TOTAL_BATCH} = "
        f"{recipe.batch_size} x {PAPER_PROCESSES} processes.\n"
        f"# On N processes keep the total: batch_size = {PAPER_TOTAL_BATCH} / N (timm's train.py "
        "can also\n# accumulate: batch_size = 1024 / N / grad_accum_steps with --grad-accum-steps)."
        "\n# lr is for the total batch of 1024; scale it linearly if you change the total.\n")
    body = yaml.safe_dump(recipe.to_dict(), sort_keys=False, default_flow_style=None, width=100)
    return header + body


def readme(config: IFormerConfig, recipe: TrainRecipe, trial: FrozenTrial, study_name: str,
           out: Path) -> str:
    attrs = trial.user_attrs
    size = paper_size(config)
    stages = []
    start = 0
    for depth in config.depths:
        ratios = config.high_ratios()[start:start + depth]
        stages.append(f"{sum(ratios) / depth:.2f}")
        start += depth
    top1 = attrs.get(Attr.TOP1)
    proxy = attrs.get(Attr.PROXY) or {}
    role = attrs.get(Attr.ROLE)
    label = role if role != Role.BASELINE else f"baseline ({attrs.get(Attr.BASELINE)})"
    return f"""# iFormer ramp exported from study `{study_name}`, trial {trial.number}

| | |
| --- | --- |
| trial | {trial.number} ({label}) |
| proxy top-1 | {f"{top1:.2f} %" if top1 is not None else "-"} after {attrs.get(Attr.EPOCHS_REACHED, '?')} epochs at {proxy.get('resolution', '?')} px, width {proxy.get('width', '?')} |
| attention heads per block (the ramp) | `{config.attention_heads}` |
| mean C_h/C per stage | {' / '.join(stages)} |
| FLOPs at 224 px | {iformer.count_flops(config, (IMAGENET_SIZE, IMAGENET_SIZE)) / 1e9:.3f} G |
| parameters | {iformer.count_params(config) / 1e6:.2f} M |
| size class (recipe, drop path) | iFormer-{size[0].upper()} (drop path {config.drop_path_rate}) |

Files: `model.yaml` is the complete model config; `train.yaml` is the paper's ImageNet recipe:

- AdamW, lr {recipe.lr:g}, weight decay {recipe.weight_decay:g}, total batch {PAPER_TOTAL_BATCH}
- {recipe.epochs} epochs: {recipe.warmup_epochs} warm-up epochs from {recipe.warmup_lr:g}, then cosine to {recipe.min_lr:g}
- RandAugment `{recipe.aa}`, Mixup {recipe.mixup:g}, CutMix {recipe.cutmix:g}, label smoothing {recipe.smoothing:g}, random erasing {recipe.reprob:g}
- drop path {recipe.drop_path:g}, EMA of the weights (decay {recipe.model_ema_decay:g}), bf16 autocast on GPUs
- evaluation: resize to {recipe.input_size[1]}/{recipe.crop_pct:g} px ({recipe.interpolation}), center crop {recipe.input_size[1]}

The data is an ImageFolder: `DATA/train/<class>/*.JPEG` and `DATA/val/<class>/*.JPEG`.

## Train with rampsearch

```
rampsearch train {out}/train.yaml --data /path/to/imagenet
torchrun --nproc_per_node 8 -m rampsearch.train {out}/train.yaml --data /path/to/imagenet
```

`batch_size` in train.yaml is per process: {recipe.batch_size} x {PAPER_PROCESSES} processes = {PAPER_TOTAL_BATCH}, the paper's
total batch. With N processes pass `--batch-size` {PAPER_TOTAL_BATCH}/N to keep it (or scale `lr`
linearly with the total batch you use).

Checkpoints (`last.pth` after every epoch, `best.pth`) and `metrics.csv` go to
`{out}/train/` unless `--output DIR` says otherwise. `--resume` continues from `last.pth` on
the same schedule. `--init released` starts from the released iFormer weights, which fit the
paper's own ramp only; `--init PATH` loads a weights file of the same shapes.

## Train with timm's train.py

From a checkout of pytorch-image-models, with this project installed in the same environment:

```
python train.py --config {out}/train.yaml --data-dir /path/to/imagenet
torchrun --nproc_per_node 8 train.py --config {out}/train.yaml --data-dir /path/to/imagenet
```

timm only knows the iFormer models once `import iformer` has run; train.yaml does that through
`device_modules: [iformer]` (timm's `--device-modules` option). `--model-kwargs` alone is not
enough, because the name `{recipe.model}` must be registered first. With a train.py older than
the `--device-modules` option, import the package before running the script:

```
python -c "import iformer, runpy; runpy.run_path('train.py', run_name='__main__')" \\
    --config {out}/train.yaml --data-dir /path/to/imagenet
```

## Build the model in Python

```python
import iformer, timm, yaml
model = iformer.create_model_from_file("{out}/model.yaml")
cfg = yaml.safe_load(open("{out}/train.yaml"))
same = timm.create_model(cfg["model"], **cfg["model_kwargs"])  # same network
```

(`iformer_small/base/large` are the paper's models; timm's own `iformer_t/s/m/l` are an
unrelated 2025 mobile network.)
"""


def write_export(out: Path, config: IFormerConfig, trial: FrozenTrial, study_name: str
                 ) -> tuple[TrainRecipe, list[Path]]:
    recipe = recipe_for_model(config)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "model.yaml", out / "train.yaml", out / "README.md"]
    config.save(files[0])
    files[1].write_text(train_yaml(recipe))
    files[2].write_text(readme(config, recipe, trial, study_name, out))
    return recipe, files


def export_trial(location: study_lib.StudyLocation, which: str = "best",
                 out: Path | None = None) -> ExportedModel:
    """Write model.yaml, train.yaml and README.md of one trial of a study."""
    run = study_lib.read_run_file(location.folder / study_lib.RUN_FILE)
    base_name = run.get("settings", {}).get("base")
    if not isinstance(base_name, str):
        raise UserError(f"{location.folder / study_lib.RUN_FILE} names no base model; it is "
                        f"written by `rampsearch run`, run that again for this study.")
    study = study_lib.load_study(location)
    trial = choose_trial(study, which)
    config = imagenet_config(iformer.load_config(base_name), list(trial.user_attrs[Attr.RAMP]))
    recipe, files = write_export(out or location.folder / EXPORT_FOLDER, config, trial,
                                 location.name)
    return ExportedModel(trial=trial.number, role=trial.user_attrs.get(Attr.ROLE, ""),
                         top1=trial.user_attrs.get(Attr.TOP1), config=config, recipe=recipe,
                         files=files)

