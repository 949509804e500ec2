"""The study as a table: one row per trained ramp, ranked honestly.

Ranking rules: trials that completed the full proxy schedule come first, by the study's
objective (validation loss by default, or top-1; both are always shown);
trials stopped early by the scheduler follow (their truncated score is never compared with a
full one); failed trials come last: the ramp's own failures (diverged, raised: final) before those of
the infrastructure (its Ray worker died: retried), told apart in the ``failure`` column.
Rejected proposals (over budget, never trained) are not rows at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna
import pandas as pd

from ..attributes import INTERRUPTED, PAPER, Attr, Role, Status
from ..study import storage as study_lib
from ..study.objective import Objective

_STATUS_ORDER = {Status.COMPLETED: 0, Status.STOPPED: 1, Status.DIVERGED: 2,
                 Status.FAILED: 3, Status.WORKER_LOST: 4}


def compact_ramp(ramp: Sequence[int], depths: Sequence[int]) -> str:
    """Run-length form per stage, e.g. ``1x3 | 3x3 | 7x4 9x5 | 11x3``."""
    stages, start = [], 0
    for depth in depths:
        runs: list[list[int]] = []
        for heads in ramp[start:start + depth]:
            if runs and runs[-1][0] == heads:
                runs[-1][1] += 1
            else:
                runs.append([heads, 1])
        stages.append(" ".join(f"{h}x{n}" if n > 1 else f"{h}" for h, n in runs))
        start += depth
    return " | ".join(stages)


def stage_ratios(high_ratios: Sequence[float], depths: Sequence[int]) -> str:
    """Mean C_h/C of each stage, e.g. ``0.67 0.50 0.26 0.08``."""
    out, start = [], 0
    for depth in depths:
        chunk = high_ratios[start:start + depth]
        out.append(f"{sum(chunk) / len(chunk):.2f}")
        start += depth
    return " ".join(out)


def trial_rows(study: optuna.Study, depths: Sequence[int]) -> pd.DataFrame:
    rows = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        role = attrs.get(Attr.ROLE)
        if role not in (Role.CANDIDATE, Role.BASELINE) or not trial.state.is_finished():
            continue
        if attrs.get(Attr.END_REASON) == INTERRUPTED:
            continue
        ramp = attrs[Attr.RAMP]
        rows.append({
            "trial": trial.number,
            "role": role if role == Role.CANDIDATE else f"baseline:{attrs.get(Attr.BASELINE)}",
            "ramp": compact_ramp(ramp, depths),
            "ch_c_per_stage": stage_ratios(attrs.get(Attr.HIGH_RATIOS, []), depths),
            "gflops": attrs[Attr.FLOPS] / 1e9,
            "params_m": attrs[Attr.PARAMS] / 1e6,
            "top1": attrs.get(Attr.TOP1),
            "top5": attrs.get(Attr.TOP5),
            "val_loss": attrs.get(Attr.VAL_LOSS),
            "epochs": attrs.get(Attr.EPOCHS_REACHED, 0),
            "status": attrs.get(Attr.STATUS, trial.state.name.lower()),
            "failure": study_lib.failure_kind(attrs.get(Attr.STATUS)),
            "within_budget": bool(attrs.get(Attr.WITHIN_BUDGET, False)),
            "end_reason": attrs.get(Attr.END_REASON, ""),
            # "supernet": its subnet's score with inherited weights; else its own training.
            "score_source": attrs.get(Attr.SCORE_SOURCE, "standalone"),
            "attention_heads": ",".join(str(a) for a in ramp),
            "ch_c_per_block": ",".join(f"{r:.4f}" for r in attrs.get(Attr.HIGH_RATIOS, [])),
        })
    return pd.DataFrame(rows)


def pareto_mask(frame: pd.DataFrame, objective: Objective) -> pd.Series:
    """Completed rows not beaten by another completed row on both the objective and FLOPs."""
    done = frame[frame["status"] == Status.COMPLETED]
    score = done[objective.key].astype(float) * objective.sign()  # higher is better
    mask = pd.Series(False, index=frame.index)
    for index, row in done.iterrows():
        mine = score[index]
        dominated = ((score >= mine) & (done["gflops"] <= row["gflops"])
                     & ((score > mine) | (done["gflops"] < row["gflops"]))).any()
        mask[index] = not dominated
    return mask


def leaderboard(study: optuna.Study, depths: Sequence[int], objective: Objective | None = None
                ) -> pd.DataFrame:
    """Every trained ramp, ranked by ``objective`` (default: the study's); ``vs_paper`` is
    the difference of the objective to the paper's ramp (one seed each: the race gives the
    interval)."""
    objective = objective or study_lib.study_settings(study).objective
    frame = trial_rows(study, depths)
    if frame.empty:
        return frame
    frame["objective"] = objective.key
    frame["pareto"] = pareto_mask(frame, objective)
    paper = frame[(frame["role"] == PAPER) & (frame["status"] == Status.COMPLETED)]
    paper_score = paper[objective.key].iloc[0] if len(paper) else float("nan")
    # Only full-length scores are compared with the paper's (a truncated score is not).
    frame["vs_paper"] = (frame[objective.key] - paper_score).where(
        frame["status"] == Status.COMPLETED)
    frame["_order"] = frame["status"].map(_STATUS_ORDER).fillna(9)
    frame = frame.sort_values(["_order", objective.key, "gflops"],
                              ascending=[True, not objective.maximize, True],
                              na_position="last").drop(columns="_order")
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame.reset_index(drop=True)


def failure_summary(frame: pd.DataFrame) -> str:
    """Whose failures the study holds, in words ("" when nothing failed)."""
    if frame.empty or "failure" not in frame:
        return ""
    ramp = int((frame["failure"] == "ramp").sum())
    infrastructure = int((frame["failure"] == "infrastructure").sum())
    if not ramp and not infrastructure:
        return ""
    return (f"failures: {ramp} of the ramps themselves (diverged or raised; final), "
            f"{infrastructure} of the infrastructure (the Ray worker died; trained again, "
            f"listed last)")


def format_table(frame: pd.DataFrame, limit: int = 10) -> str:
    """The top ``limit`` rows; the objective's column is marked with '*'."""
    if frame.empty:
        return "(no trained trials yet)"
    shown = frame.head(limit)
    ranked_by = str(frame["objective"].iloc[0])
    diff_fmt = "{:+.4f}" if ranked_by == "val_loss" else "{:+.2f}"
    columns = [
        ("rank", "rank", "{}"), ("trial", "trial", "{}"), ("role", "role", "{}"),
        ("val_loss", "val loss" + ("*" if ranked_by == "val_loss" else ""), "{:.4f}"),
        ("top1", "top-1 %" + ("*" if ranked_by == "top1" else ""), "{:.2f}"),
        ("vs_paper", "vs paper*", diff_fmt), ("gflops", "GFLOPs", "{:.3f}"),
        ("params_m", "params M", "{:.2f}"), ("epochs", "ep", "{}"),
        ("within_budget", "in budget", "{}"), ("pareto", "pareto", "{}"),
        ("ch_c_per_stage", "C_h/C by stage", "{}"), ("ramp", "ramp (attention heads)", "{}"),
    ]
    cells = [[title for _, title, _ in columns]]
    for _, row in shown.iterrows():
        line = []
        for key, _, fmt in columns:
            value = row[key]
            if isinstance(value, bool):
                line.append("yes" if value else "no")
            elif value is None or (isinstance(value, float) and pd.isna(value)):
                line.append("-")
            else:
                line.append(fmt.format(value))
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) if i < len(columns) - 2 else c.ljust(w)
                       for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"* ranked by {ranked_by} ({'lower' if ranked_by == 'val_loss' else 'higher'} is "
                 f"better); vs paper is one seed each: the race gives the interval.")
    return "\n".join(lines)
