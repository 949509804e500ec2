"""Export: a real Optuna study on disk, exported through the CLI, rebuilt by iformer and timm."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import timm
import torch
import yaml
from optuna.trial import TrialState

import iformer
from rampsearch.attributes import StudyAttr
from rampsearch.cli import main
from rampsearch.study.objective import OBJECTIVES
from rampsearch.study.storage import (
    StudyLocation,
    StudySettings,
    default_storage_url,
    write_run_file,
)
from rampsearch.training.proxy import ProxySettings
from rampsearch.training.recipe import TrainRecipe, load_recipe, recipe_for_model
from search_spaces import Budget

PAPER_SMALL = iformer.preset("small").attention_heads
SEARCHED = PAPER_SMALL[:9] + [8] + PAPER_SMALL[10:]  # one more attention head in block 9
WIDER = PAPER_SMALL[:9] + [9] + PAPER_SMALL[10:]


def add_trial(study: optuna.Study, ramp: list[int] | None, role: str, status: str | None,
              top1: float | None = None, within_budget: bool = True, size: str = "small",
              **attrs: object) -> None:
    """One trial with the user attributes `rampsearch run` writes, in the given end state."""
    trial = study.ask()
    trial.set_user_attr("role", role)
    if ramp is not None:
        config = iformer.preset(size).with_ramp(ramp)
        trial.set_user_attr("ramp", ramp)
        trial.set_user_attr("high_ratios", config.high_ratios())
        trial.set_user_attr("flops", iformer.count_flops(config, (224, 224)))
        trial.set_user_attr("params", iformer.count_params(config))
        trial.set_user_attr("within_budget", within_budget)
        trial.set_user_attr("proxy", ProxySettings().to_dict())
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    if status is not None:
        trial.set_user_attr("status", status)
        trial.set_user_attr("epochs_reached", 4 if status == "completed" else 2)
    if top1 is not None:
        trial.set_user_attr("top1", top1)
        trial.set_user_attr("top5", min(100.0, top1 + 20))
    if status == "completed":
        values = [top1] + ([trial.user_attrs["flops"] / 1e9] if len(study.directions) > 1 else [])
        study.tell(trial, values)
    elif status in ("stopped", "rejected"):
        study.tell(trial, state=TrialState.PRUNED)
    elif status in ("failed", "diverged"):
        study.tell(trial, state=TrialState.FAIL)
    # status None: left running, as a search that is still going


def make_study(results: Path, name: str = "ramps", base: str = "iformer_small",
               objectives: int = 1) -> tuple[StudyLocation, optuna.Study]:
    location = StudyLocation(name, default_storage_url(results / name), results)
    (results / name).mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(storage=location.storage_url, study_name=name,
                                directions=["maximize", "minimize"][:objectives])
    # Two objectives: top-1 against FLOPs, as nsga2 searches them.
    settings = StudySettings(base=base, space="free", budget=Budget(4_900_000_000),
                             data="synthetic", proxy=ProxySettings().to_dict(),
                             sampler="nsga2" if objectives == 2 else "tpe", seed=0,
                             scheduler="fifo", objective=OBJECTIVES["top1"])
    study.set_user_attr(StudyAttr.SETTINGS, settings.to_dict())
    write_run_file(location, settings, trials=8)
    return location, study


def full_study(results: Path, objectives: int = 1) -> StudyLocation:
    """Trials 0..6: paper baseline, best candidate, an over-budget one, one stopped early,
    one rejected, one failed, one still running."""
    location, study = make_study(results, objectives=objectives)
    add_trial(study, PAPER_SMALL, "baseline", "completed", 60.0, baseline="paper")
    add_trial(study, SEARCHED, "candidate", "completed", 65.0)
    add_trial(study, WIDER, "candidate", "completed", 70.0, within_budget=False)
    add_trial(study, WIDER, "candidate", "stopped", 80.0)
    add_trial(study, None, "rejected", "rejected", end_reason="over budget: 5,100,000,000 FLOPs")
    add_trial(study, SEARCHED, "candidate", "failed", end_reason="the Ray worker died")
    add_trial(study, SEARCHED, "candidate", None)
    return location


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One study for the tests that only read it (each writes to its own --out)."""
    folder = tmp_path_factory.mktemp("results")
    full_study(folder)
    return folder


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str) -> None:
    assert code == 2
    assert err.startswith("rampsearch: error: ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_best_exports_the_top_completed_trial_within_budget(results: Path, capsys) -> None:
    code, out, _ = run_cli(["export", "--results", str(results)], capsys)
    assert code == 0 and "exported trial 1 " in out
    folder = results / "ramps" / "export"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "model.yaml", "train.yaml"]

    config = iformer.IFormerConfig.load(folder / "model.yaml")
    assert config == dataclasses.replace(iformer.preset("small").with_ramp(SEARCHED),
                                         drop_path_rate=0.2, num_classes=1000, img_size=224)

    train = yaml.safe_load((folder / "train.yaml").read_text())
    assert train["model"] == "iformer_small"
    assert train["model_kwargs"] == {"attention_heads": SEARCHED}
    recipe = {k: train[k] for k in ("opt", "lr", "weight_decay", "epochs", "warmup_epochs",
                                    "warmup_lr", "min_lr", "sched", "aa", "mixup", "cutmix",
                                    "smoothing", "reprob", "drop_path", "model_ema",
                                    "interpolation", "crop_pct", "num_classes", "input_size")}
    assert recipe == {"opt": "adamw", "lr": 1e-3, "weight_decay": 0.05, "epochs": 300,
                      "warmup_epochs": 5, "warmup_lr": 1e-6, "min_lr": 1e-6, "sched": "cosine",
                      "aa": "rand-m9-mstd0.5-inc1", "mixup": 0.8, "cutmix": 1.0,
                      "smoothing": 0.1, "reprob": 0.25, "drop_path": 0.2, "model_ema": True,
                      "interpolation": "bicubic", "crop_pct": 0.9, "num_classes": 1000,
                      "input_size": [3, 224, 224]}
    assert train["batch_size"] * 8 == 1024 and train["device_modules"] == ["iformer"]

    text = (folder / "README.md").read_text()
    assert "trial 1" in text and str(SEARCHED) in text
    assert "torchrun --nproc_per_node 8 -m rampsearch.train" in text
    assert "python train.py --config" in text and "import iformer" in text


def test_exported_files_rebuild_the_same_model(results: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "export"
    code, _, _ = run_cli(["export", "--results", str(results), "--trial", "1", "--out",
                          str(folder)], capsys)
    assert code == 0
    train = yaml.safe_load((folder / "train.yaml").read_text())
    with torch.device("meta"):  # shapes only: skips initialising three 20 M-parameter models
        from_file = iformer.create_model_from_file(str(folder / "model.yaml"))
        from_timm = timm.create_model(train["model"], **train["model_kwargs"])
        # timm's train.py adds these itself from the top-level keys of train.yaml.
        from_timm_train = timm.create_model(
            train["model"], pretrained=False, in_chans=train["input_size"][0],
            num_classes=train["num_classes"], drop_rate=train["drop"],
            drop_path_rate=train["drop_path"], drop_block_rate=None, global_pool=None,
            bn_momentum=None, bn_eps=None, scriptable=False, checkpoint_path="",
            **train["model_kwargs"])

    assert from_timm_train.config == from_file.config
    assert load_recipe(folder / "train.yaml").model_config() == from_file.config
    shapes = {k: tuple(v.shape) for k, v in from_file.state_dict().items()}
    for other in (from_timm, from_timm_train):
        assert {k: tuple(v.shape) for k, v in other.state_dict().items()} == shapes
        assert sum(p.numel() for p in other.parameters()) == \
            sum(p.numel() for p in from_file.parameters()) == iformer.count_params(from_file.config)
        assert iformer.count_flops(other.config, (224, 224)) == \
            iformer.count_flops(from_file.config, (224, 224))


def test_a_chosen_trial_goes_to_the_chosen_folder(results: Path, tmp_path: Path,
                                                   capsys) -> None:
    out = tmp_path / "elsewhere"
    code, _, _ = run_cli(["export", "--results", str(results), "--study", "ramps",
                          "--trial", "2", "--out", str(out)], capsys)
    assert code == 0  # completed but over budget: exportable when named
    assert iformer.IFormerConfig.load(out / "model.yaml").attention_heads == WIDER


def test_multi_objective_best_is_the_top1_rule(tmp_path: Path, capsys) -> None:
    full_study(tmp_path, objectives=2)
    code, out, _ = run_cli(["export", "--results", str(tmp_path)], capsys)
    assert code == 0 and "exported trial 1 " in out


@pytest.mark.parametrize("trial, words", [
    ("3", "stopped early after epoch 2"),
    ("4", "rejected before training"),
    ("5", "failed (the Ray worker died)"),
    ("6", "still running"),
    ("99", "has no trial 99"),
    ("first", "neither 'best' nor a trial number"),
])
def test_a_trial_that_did_not_complete_is_refused(results: Path, capsys, trial: str,
                                                  words: str) -> None:
    code, _, err = run_cli(["export", "--results", str(results), "--trial", trial], capsys)
    assert_one_line_error(code, err)
    assert words in err
    assert "0 (60.00%)" in err and "1 (65.00%)" in err and "2 (70.00%)" in err
    assert "3 (" not in err


def test_no_completed_trial_yet(tmp_path: Path, capsys) -> None:
    _, study = make_study(tmp_path)
    add_trial(study, SEARCHED, "candidate", "stopped", 50.0)
    code, _, err = run_cli(["export", "--results", str(tmp_path)], capsys)
    assert_one_line_error(code, err)
    assert "no completed trial within its budget" in err and "none yet" in err


def test_missing_study(results: Path, tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(["export", "--results", str(results), "--study", "nope"], capsys)
    assert_one_line_error(code, err)
    assert "no study 'nope'" in err and "ramps" in err
    code, _, err = run_cli(["export", "--results", str(tmp_path / "empty")], capsys)
    assert_one_line_error(code, err)


def test_a_model_file_base_picks_the_recipe_of_its_size(tmp_path: Path, capsys) -> None:
    base_file = iformer.preset("base").save(tmp_path / "base.yaml")
    location, study = make_study(tmp_path, base=str(base_file))
    ramp = iformer.preset("base").attention_heads
    add_trial(study, ramp, "baseline", "completed", 55.0, size="base", baseline="paper")
    assert run_cli(["export", "--results", str(tmp_path)], capsys)[0] == 0
    recipe = load_recipe(location.folder / "export" / "train.yaml")
    assert recipe.model == "iformer_base" and recipe.drop_path == 0.4
    assert recipe.model_config() == dataclasses.replace(iformer.preset("base"),
                                                        drop_path_rate=0.4)


def test_recipe_of_a_small_custom_model_names_every_changed_field() -> None:
    tiny = iformer.IFormerConfig(depths=[1, 1, 1, 1], embed_dims=[8, 16, 24, 32],
                                 num_heads=[1, 2, 3, 4], attention_heads=[0, 1, 2, 3],
                                 img_size=32, num_classes=3, layer_scale_init=1e-5)
    written = yaml.safe_dump(recipe_for_model(tiny).to_dict())
    recipe = TrainRecipe.from_dict(yaml.safe_load(written))
    assert set(recipe.model_kwargs) == {"depths", "embed_dims", "num_heads", "attention_heads",
                                        "img_size", "layer_scale_init"}
    assert recipe.model_config() == tiny


def printed_by(code: str) -> str:
    """What ``code`` prints in a fresh interpreter (nothing imported before it)."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def test_exporting_leaves_the_trainer_unloaded() -> None:
    """export reads the recipe alone, and so does the command line until `rampsearch train`
    runs: the DDP trainer stays unloaded."""
    assert printed_by("import sys, rampsearch.reporting.export; loaded = ['rampsearch.training.trainer' in "
                      "sys.modules]; import rampsearch.cli; rampsearch.cli.build_parser(); "
                      "print(loaded + ['rampsearch.training.trainer' in sys.modules])") == "[False, False]"


def test_ranking_reporting_and_exporting_leave_ray_unloaded() -> None:
    """The study's bookkeeping is apart from its execution: reading, ranking, reporting and
    exporting a study never import Ray (only training does)."""
    assert printed_by("import sys, rampsearch.reporting.report, rampsearch.ranking.race_results, rampsearch.reporting.export, "
                      "rampsearch.study.trials, rampsearch.commands.report, "
                      "rampsearch.commands.rank; print('ray' in sys.modules)") == "False"
