"""`rampsearch spaces`: every search space with its size, FLOPs range and feasible share."""

from __future__ import annotations

import argparse
import json
from typing import Any

import search_spaces
from search_spaces import Budget, SearchSpace, format_flops

from ..options import add_budget_resolution
from ..study.plan import budget_resolution

HELP = "list the search spaces: size, FLOPs range, share within a budget"
DESCRIPTION = ("List the built-in search spaces (or the ones named with --space) with "
               "their exact number of ramps, their exact cheapest and dearest FLOPs and, "
               "given a budget, the share of their ramps within it (exact where it can "
               "be counted, a Monte-Carlo estimate otherwise, and said so). One "
               "multiply-add counts as one flop, as in the paper.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", default=None,
                        help="preset (iformer_small/base/large) or a model YAML/JSON file; "
                             "default: the preset whose monotone ramps span the budget, or "
                             "iformer_small without a budget")
    parser.add_argument("--budget", default=None, metavar="B",
                        help="FLOPs budget, e.g. 4.8GFLOPs, 4.8G, 4800MFLOPs, 4.8e9 or 4.8GMACs "
                             "(one multiply-add = one flop)")
    add_budget_resolution(parser)
    parser.add_argument("--space", action="append", default=None, metavar="SPACE",
                        help="a built-in space name or a YAML space file to list instead of "
                             "the built-ins (repeatable)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    img_size = budget_resolution(args.budget_resolution)
    budget = search_spaces.parse_budget(args.budget, img_size) if args.budget is not None else None
    base = search_spaces.base_for(args.base, budget)
    spaces = [search_spaces.load_space(spec, base=base)
              for spec in (args.space or search_spaces.space_names())]
    rows = [describe(space, budget, img_size) for space in spaces]
    if budget is not None and all(row["below_min"] for row in rows):
        cheapest = min(spaces, key=lambda space: space.min_flops(img_size))
        search_spaces.check_budget(cheapest, budget)  # raises, naming the range and a preset
    baselines = describe_baselines(spaces, budget, img_size)
    if args.json:
        print(json.dumps({
            "base": spaces[0].base_name, "img_size": list(img_size),
            "budget": None if budget is None else {"flops": budget.flops, "text": budget.text},
            "spaces": rows, "baselines": baselines}, indent=2))
        return 0
    print_table(spaces[0].base_name, args.base is None, budget, img_size, rows, baselines)
    return 0


def describe(space: SearchSpace, budget: Budget | None, img_size: tuple[int, int]) -> dict:
    low, high = space.flops_range(img_size)
    row: dict[str, Any] = {
        "name": space.name, "family": space.family, "description": space.description,
        "params": len(space.param_names()), "size": space.size(),
        "min_flops": low, "max_flops": high}
    if budget is not None:
        fraction, exact = space.feasible_fraction(budget)
        row.update(feasible_fraction=fraction, exact=exact, binds=low <= budget.flops < high,
                   below_min=budget.flops < low)
    else:
        row.update(below_min=False)
    return row


def describe_baselines(spaces: list[SearchSpace], budget: Budget | None,
                       img_size: tuple[int, int]) -> list[dict]:
    rows = []
    for name, ramp in spaces[0].baselines().items():
        flops = spaces[0].flops(ramp, img_size)
        rows.append({"name": name, "ramp": ramp, "flops": flops,
                     "within_budget": None if budget is None else flops <= budget.flops,
                     "in_spaces": [s.name for s in spaces if s.contains(ramp)]})
    return rows


def print_table(base_name: str, chosen: bool, budget: Budget | None, img_size: tuple[int, int],
                rows: list[dict], baselines: list[dict]) -> None:
    how = " (the preset whose monotone ramps span the budget)" if chosen and budget else ""
    header = f"base {base_name}{how}; FLOPs at {img_size[0]}x{img_size[1]}, one multiply-add " \
             f"= one flop"
    print(header)
    if budget is not None:
        print(f"budget {format_flops(budget.flops)} ({budget.text})")
    columns = ["space", "family", "params", "ramps", "min GFLOPs", "max GFLOPs"]
    if budget is not None:
        columns.append("within budget")
    table = [columns]
    for row in rows:
        line = [row["name"], row["family"], str(row["params"]), count_text(row["size"]),
                f"{row['min_flops'] / 1e9:.3f}", f"{row['max_flops'] / 1e9:.3f}"]
        if budget is not None:
            line.append(fraction_text(row))
        table.append(line)
    print_aligned(table, right={2, 3, 4, 5})
    print()
    table = [["baseline", "GFLOPs"] + (["budget"] if budget else []) + ["in spaces"]]
    for row in baselines:
        within = [] if budget is None else ["within" if row["within_budget"] else "OVER"]
        table.append([row["name"], f"{row['flops'] / 1e9:.3f}", *within,
                      ", ".join(row["in_spaces"]) or "-"])
    print_aligned(table, right={1})


def count_text(size: int) -> str:
    return f"{size:,}" if size < 10**9 else f"{size:.3e}"


def fraction_text(row: dict) -> str:
    if row["below_min"]:
        return "0 % (below the cheapest)"
    if not row["binds"]:
        return "100 % (does not bind)"
    how = "exact" if row["exact"] else "estimated"
    return f"{100 * row['feasible_fraction']:.2f} % ({how})"


def print_aligned(table: list[list[str]], right: set[int]) -> None:
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        cells = [cell.rjust(w) if i in right else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(line, widths))]
        print("  ".join(cells).rstrip())
