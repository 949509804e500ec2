"""`rampsearch flops`: the table, --json, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import iformer
from rampsearch.cli import main


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["flops", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_table_of_the_small_preset(capsys) -> None:
    code, out, _ = run_cli(capsys)
    assert code == 0
    lines = out.splitlines()
    assert "4.848 G (4,848,476,928)" in lines[0] and "19,866,344" in lines[0]
    assert len(lines) == 2 + 18  # summary, header, one row per block
    assert lines[2].split()[:4] == ["0", "1", "1/3", "0.667"]


def test_json_with_a_ramp_and_a_non_square_size(capsys) -> None:
    ramp = [0, 1, 3, 3, 6, 0, 10, 7, 7, 7, 9, 9, 9, 9, 9, 11, 12, 11]
    code, out, _ = run_cli(capsys, "--attention-heads", ",".join(map(str, ramp)),
                           "--img-size", "224x320", "--json")
    assert code == 0
    report = json.loads(out)
    config = iformer.preset("small", attention_heads=ramp)
    assert report["flops"] == iformer.count_flops(config, (224, 320))
    assert report["params"] == iformer.count_params(config)
    assert report["img_size"] == [224, 320]
    assert [b["attention_heads"] for b in report["blocks"]] == ramp
    assert [b["high_ratio"] for b in report["blocks"]] == config.high_ratios()
    assert sum(b["flops"] for b in report["blocks"]) < report["flops"]


def test_base_from_a_model_file(tmp_path, capsys) -> None:
    config = iformer.preset("base").scaled(0.25)
    path = config.save(tmp_path / "model.yaml")
    code, out, _ = run_cli(capsys, "--base", str(path), "--img-size", "64", "--json")
    assert code == 0
    assert json.loads(out)["flops"] == iformer.count_flops(config, 64)


@pytest.mark.parametrize(("args", "message"), [
    (["--attention-heads", "1,2"], "attention_heads has 2 entries but depths sum to 18"),
    (["--attention-heads", "1,x"], "is not a comma-separated list of integers"),
    (["--attention-heads", ",".join(["4"] * 18)], "block 0 asks for 4 attention heads but "
                                                  "stage 1 has 3 heads"),
    (["--img-size", "abc"], "--img-size 'abc' is not an image size"),
    (["--img-size", "0"], "is not an image size"),
    (["--base", "iformer_tiny"], "unknown iFormer preset 'iformer_tiny'"),
    (["--base", "missing.yaml"], "cannot read model config missing.yaml"),
])
def test_bad_input_gives_exit_2_and_one_line(capsys, args: list[str], message: str) -> None:
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith("rampsearch: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_command_line_process_has_no_traceback() -> None:
    result = subprocess.run([sys.executable, "-m", "rampsearch", "flops", "--attention-heads",
                             "9"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "attention_heads has 1 entry but depths sum to 18" in result.stderr
