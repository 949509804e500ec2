"""`rampsearch spaces`: the table, the JSON, and the errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rampsearch.cli import main
from search_spaces import load_space, parse_budget


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["spaces", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_lists_every_space_with_exact_numbers(capsys):
    code, out, err = run(capsys, "--budget", "4.8GFLOPs")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert "iformer_small" in lines[0] and "224x224" in lines[0]
    header = next(line for line in lines if line.startswith("space"))
    assert "within budget" in header and "min GFLOPs" in header
    for name in ("free", "monotone", "stagewise", "smooth"):
        row = next(line for line in lines if line.startswith(name + " "))
        space = load_space(name)
        assert f"{space.min_flops() / 1e9:.3f}" in row and f"{space.max_flops() / 1e9:.3f}" in row
        fraction, _ = space.feasible_fraction(parse_budget("4.8G"))
        assert f"{100 * fraction:.2f} % (exact)" in row
    assert "1,415,708" in out  # monotone size on iformer_small
    paper = next(line for line in lines if line.startswith("paper "))
    assert "4.848" in paper and "OVER" in paper
    # The table's columns line up: every row of the spaces table has the header's width.
    rows = lines[lines.index(header): lines.index(header) + 5]
    starts = {line.index("  ", len("stagewise")) for line in rows}
    assert len(starts) == 1


def test_json_output_and_base_chosen_from_the_budget(capsys):
    code, out, _ = run(capsys, "--budget", "9.4G", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["base"] == "iformer_base" and data["img_size"] == [224, 224]
    assert data["budget"] == {"flops": 9_400_000_000, "text": "9.4G"}
    by_name = {row["name"]: row for row in data["spaces"]}
    assert set(by_name) == {"free", "monotone", "stagewise", "smooth"}
    monotone = load_space("monotone", base="iformer_base")
    assert by_name["monotone"]["size"] == monotone.size()
    assert by_name["monotone"]["min_flops"] == monotone.min_flops()
    assert by_name["monotone"]["exact"] is True and by_name["monotone"]["binds"] is True
    assert {b["name"] for b in data["baselines"]} >= {"paper", "reverse_ramp"}


def test_without_a_budget_and_at_another_resolution(capsys):
    code, out, _ = run(capsys, "--base", "iformer_small", "--budget-resolution", "384")
    assert code == 0 and "384x384" in out and "within budget" not in out
    space = load_space("free")
    assert f"{space.max_flops(384) / 1e9:.3f}" in out


def test_an_over_generous_budget_does_not_bind(capsys):
    code, out, _ = run(capsys, "--base", "small", "--budget", "6G")
    assert code == 0
    assert out.count("100 % (does not bind)") == 4


def test_a_user_space_file(tmp_path, capsys):
    path = tmp_path / "mine.yaml"
    path.write_text("family: monotone\nstages: {4: {min_heads: 6}}\n")
    code, out, _ = run(capsys, "--space", str(path), "--space", "free", "--budget", "4.8G")
    assert code == 0
    assert out.splitlines()[3].startswith("mine ") and "free " in out


@pytest.mark.parametrize("argv, says", [
    (["--budget", "4.8GB"], "'B' is not FLOPs or MACs"),
    (["--budget", "3G"], "no iFormer preset has monotone ramps that cost 3.000 GFLOPs"),
    (["--base", "iformer_small", "--budget", "4.5G"], "below every ramp"),
    (["--base", "iformer_huge"], "unknown iFormer preset"),
    (["--budget-resolution", "big"], "--budget-resolution 'big' is not an image size"),
    (["--space", "nowhere.yaml"], "there is no space 'nowhere.yaml'"),
])
def test_errors_are_one_paragraph_and_exit_2(capsys, argv, says):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("rampsearch: error: ") and says in err
    assert err.count("\n") == 1


@pytest.mark.slow  # a fresh interpreter imports torch and every command
def test_error_from_a_real_process_has_no_traceback():
    done = subprocess.run([sys.executable, "-m", "rampsearch", "spaces", "--budget", "-1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "negative" in done.stderr
