"""`rampsearch run` options: --config merging and every bad input refused before training."""

from __future__ import annotations

import argparse

import pytest

from rampsearch.cli import build_parser, main
from rampsearch.commands.run import apply_defaults, merge_config_file
from rampsearch.errors import UserError


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def test_config_file_fills_what_flags_leave_out(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("budget: 4.7GFLOPs\ntrials: 9\nspace: free\nbatch-size: 32\n")
    args = parse("--config", str(config), "--trials", "5")
    merge_config_file(args)
    apply_defaults(args)
    assert args.budget == "4.7GFLOPs" and args.space == "free" and args.batch_size == 32
    assert args.trials == 5  # the flag wins
    assert args.sampler == "tpe" and args.data == "fashion-mnist"  # defaults fill the rest


@pytest.mark.parametrize("text, message", [
    ("budget: [1, 2\n", "not valid YAML"),
    ("- just\n- a list\n", "must be a mapping"),
    ("budgett: 4.8G\n", "unknown option 'budgett'"),
])
def test_bad_config_file(tmp_path, text, message):
    config = tmp_path / "run.yaml"
    config.write_text(text)
    with pytest.raises(UserError, match=message):
        merge_config_file(parse("--config", str(config)))


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
