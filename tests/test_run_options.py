"""`rampsearch run` options: flags over --config over a resumed study over the defaults, and
every bad input refused before training."""

from __future__ import annotations

import argparse

import pytest

from rampsearch.cli import main, parse_args
from rampsearch.errors import UserError
from rampsearch.options import RACE_DEFAULTS
from rampsearch.study import storage as study_lib
from rampsearch.study.objective import OBJECTIVES
from rampsearch.training.proxy import ProxySettings
from search_spaces import Budget


def parse(*argv: str) -> argparse.Namespace:
    return parse_args(["run", *argv])


def test_config_file_fills_what_flags_leave_out(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("budget: 4.7GFLOPs\ntrials: 9\nspace: free\nbatch-size: 32\n")
    args = parse("--config", str(config), "--trials", "5")
    assert args.budget == "4.7GFLOPs" and args.space == "free" and args.batch_size == 32
    assert args.trials == 5  # the flag wins
    assert args.sampler == "tpe" and args.data == "auto"  # defaults fill the rest


def test_config_values_are_converted_as_flags_are(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("trials: '5'\nbudget-resolution: 256\nlr: '1e-3'\nmax-concurrent: null\n")
    args = parse("--config", str(config))
    assert args.trials == 5 and args.lr == 1e-3 and args.max_concurrent is None
    assert args.budget_resolution == "256" and args.budget_resolution == parse(
        "--budget-resolution", "256").budget_resolution  # as the command line gives it
    config.write_text("results: 5\nbudget: 4800000000\n")
    assert (parse("--config", str(config)).results, parse("--config", str(config)).budget) == (
        "5", "4800000000")
    config.write_text("seed: five\n")
    with pytest.raises(UserError, match="--seed must be an integer, got 'five'"):
        parse("--config", str(config))
    config.write_text("study: [1]\n")
    with pytest.raises(UserError, match=r"--study must be one value .*, got \[1\]"):
        parse("--config", str(config))


def test_a_config_value_of_the_wrong_kind_is_one_line(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("width: [1]\n")
    code = main(["run", "--budget", "4.8G", "--data", "synthetic", "--config", str(config),
                 "--results", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2 and err == "rampsearch: error: --width must be one value written as on " \
                                "the command line, got [1].\n"
    for text, message in (("scheduler: fancy", "--scheduler must be one of asha, none"),
                          ("max-seeds: 2.5", "--max-seeds must be an integer, got 2.5"),
                          ("reeval-top: true", "--reeval-top must be one value")):
        config.write_text(text + "\n")
        with pytest.raises(UserError, match=message):
            parse("--config", str(config))


def write_study(results, name: str, seed: int, proxy: ProxySettings) -> None:
    """A study's run.json, as `rampsearch run` writes it."""
    location = study_lib.StudyLocation(name, study_lib.default_storage_url(results / name),
                                       results)
    settings = study_lib.StudySettings(
        base="iformer_small", space="free", budget=Budget(4_700_000_000), data="synthetic",
        proxy=proxy.to_dict(), sampler="random", seed=seed, scheduler="asha",
        objective=OBJECTIVES["top1"])
    study_lib.write_run_file(location, settings, trials=3)


def test_resumed_study_settings_under_the_config_file_under_flags(tmp_path):
    results = tmp_path / "results"
    write_study(results, "old", seed=7, proxy=ProxySettings(epochs=3, val_samples=500,
                                                            lr=1e-3))
    resume = ["--resume", "--study", "old", "--results", str(results)]
    args = parse(*resume)
    assert (args.seed, args.trials, args.space, args.sampler, args.objective) == (
        7, 3, "free", "random", OBJECTIVES["top1"])  # the study's fill what flags leave out
    # Typed as stored, not written out as text to be parsed again.
    assert args.budget == Budget(4_700_000_000) and args.budget_resolution == (224, 224)
    assert args.data == "synthetic"
    assert args.stored_proxy["val_samples"] == 500  # settings without a flag come back too
    assert args.max_seeds == RACE_DEFAULTS["max_seeds"]  # defaults fill the rest

    config = tmp_path / "run.yaml"
    config.write_text("seed: 8\ntrials: 4\nepochs: 2\n")
    args = parse(*resume, "--config", str(config))
    assert (args.seed, args.trials, args.epochs, args.space) == (8, 4, 2, "free")

    args = parse(*resume, "--config", str(config), "--seed", "9", "--epochs", "5")
    assert (args.seed, args.trials, args.epochs) == (9, 4, 5)  # the flag wins


def test_a_config_file_can_name_the_study_to_resume(tmp_path):
    results = tmp_path / "results"
    write_study(results, "old", seed=7, proxy=ProxySettings())
    write_study(results, "new", seed=8, proxy=ProxySettings())
    config = tmp_path / "run.yaml"
    config.write_text(f"study: old\nresults: {results}\n")
    assert parse("--resume", "--config", str(config)).seed == 7


@pytest.mark.parametrize("text, message", [
    ("budget: [1, 2\n", "not valid YAML"),
    ("- just\n- a list\n", "must be a mapping"),
    ("budgett: 4.8G\n", "unknown option 'budgett'"),
])
def test_bad_config_file(tmp_path, text, message):
    config = tmp_path / "run.yaml"
    config.write_text(text)
    with pytest.raises(UserError, match=message):
        parse("--config", str(config))


@pytest.mark.parametrize("argv, message", [
    ([], "--budget is required"),
    (["--budget", "4.8GB"], "4.8GB"),
    (["--budget", "1GFLOPs"], "no iFormer preset has monotone ramps that cost 1.000 GFLOPs"),
    (["--budget", "4.8G", "--base", "iformer_tiny"], "iformer_tiny"),
    (["--budget", "4.8G", "--space", "spiral"], "no space 'spiral'"),
    (["--budget", "4.8G", "--data", "/no/such/folder"], "/no/such/folder"),
    (["--budget", "4.8G", "--storage", "nosuchdb://x/y"], "cannot open the study storage"),
    (["--budget", "4.8G", "--sampler", "cmaes"], "cmaes needs a continuous space"),
    (["--budget", "4.8G", "--trials", "0"], "at least 1 candidate"),
    (["--budget", "4.8G", "--cpus-per-trial", "0"], "--cpus-per-trial must be positive"),
    (["--budget", "4.8G", "--max-concurrent", "0"], "--max-concurrent 0: give at least 1"),
    (["--budget", "4.8G", "--resolution", "32"], "resolution"),
    (["--budget", "4.8G", "--study", "../up"], "not usable as a folder name"),
    (["--budget", "4.8G", "--resume"], "no study under"),
    (["--budget", "4.8G", "--supernet", "epochs=2"], "add --strategy oneshot"),
    (["--budget", "4.8G", "--strategy", "oneshot", "--supernet", "strategy=greedy"],
     "--supernet 'strategy=greedy': supernet setting strategy is 'greedy'"),
    (["--budget", "4.8G", "--strategy", "oneshot", "--supernet", "epochs=0"],
     "supernet setting epochs is 0; use at least 1"),
    (["--budget", "4.8G", "--strategy", "oneshot", "--supernet", "depth=3"],
     "unknown supernet setting(s) depth"),
])
def test_bad_input_is_one_clear_error_before_training(tmp_path, capsys, argv, message):
    data = [] if "--data" in argv else ["--data", "synthetic"]
    code = main(["run", *argv, *data, "--results", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert err.startswith("rampsearch: error: ") and err.count("\n") == 1
    assert not list((tmp_path / "results").glob("*/ray"))  # nothing started


def test_infeasible_budget_names_the_range_and_a_preset(capsys, tmp_path):
    code = main(["run", "--budget", "9.4GFLOPs", "--base", "iformer_large", "--data",
                 "synthetic", "--results", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "iformer_base" in err and "GFLOPs" in err and "Traceback" not in err


def test_help_shows_defaults_of_values_not_of_on_off_flags():
    from rampsearch.cli import build_parsers

    _, commands = build_parsers()
    for name, parser in commands.items():
        text = " ".join(parser.format_help().split())
        assert "(default: True)" not in text and "(default: False)" not in text, name
    fidelity_help = " ".join(commands["fidelity"].format_help().split())
    assert "skip the zero-cost scores --no-train" in fidelity_help
    assert "(default: 2)" in fidelity_help  # --seeds still shows its value


def test_seed_seeds_the_search_trainings_and_the_race_never_reuses_it(tmp_path):
    from rampsearch.commands.run import search_proxy
    from rampsearch.ranking.race import race_seeds

    proxy = search_proxy(parse("--budget", "4.8GFLOPs", "--seed", "5", "--data", "synthetic"))
    assert proxy.seed == 5
    assert 5 not in race_seeds(5, RACE_DEFAULTS["max_seeds"])
    results = tmp_path / "results"
    write_study(results, "old", seed=7, proxy=ProxySettings(seed=7))
    resumed = parse("--resume", "--study", "old", "--results", str(results))
    assert search_proxy(resumed).seed == 7  # a resumed study keeps its trainings' seed
