"""One self-contained HTML report of a study (plotly.js inlined, opens offline)."""

from __future__ import annotations

import html
import math
import warnings
from collections.abc import Sequence

import optuna
import pandas as pd
import plotly.graph_objects as go
from optuna.trial import TrialState

from . import study as study_lib

_PAPER_COLOR = "#d62728"
_CANDIDATE_COLOR = "#1f77b4"
_OVER_COLOR = "#b0b0b0"


def accuracy_vs_flops(frame: pd.DataFrame, budget_gflops: float) -> go.Figure:
    done = frame[frame["status"] == "completed"]
    fig = go.Figure()
    candidates = done[done["role"] == "candidate"]
    fig.add_trace(go.Scatter(
        x=candidates["gflops"], y=candidates["top1"], mode="markers", name="searched ramps",
        marker=dict(size=9, color=[_CANDIDATE_COLOR if b else _OVER_COLOR
                                   for b in candidates["within_budget"]]),
        text=[f"trial {t}<br>{r}" for t, r in zip(candidates["trial"], candidates["ramp"])],
        hovertemplate="%{text}<br>%{x:.3f} GFLOPs, top-1 %{y:.2f}%<extra></extra>"))
    baselines = done[done["role"] != "candidate"]
    fig.add_trace(go.Scatter(
        x=baselines["gflops"], y=baselines["top1"], mode="markers+text", name="baselines",
        marker=dict(size=12, symbol="diamond", color=_PAPER_COLOR),
        text=[r.removeprefix("baseline:") for r in baselines["role"]], textposition="top center",
        hovertemplate="%{text}<br>%{x:.3f} GFLOPs, top-1 %{y:.2f}%<extra></extra>"))
    front = done[done["pareto"]].sort_values("gflops")
    fig.add_trace(go.Scatter(x=front["gflops"], y=front["top1"], mode="lines",
                             name="Pareto front", line=dict(dash="dot", color="#2ca02c")))
    fig.add_vline(x=budget_gflops, line=dict(color="black", dash="dash"),
                  annotation_text=f"budget {budget_gflops:.3f} G")
    fig.update_layout(title="Proxy top-1 against FLOPs", xaxis_title="GFLOPs at the budget's "
                      "resolution", yaxis_title="proxy top-1 (%)")
    return fig


def ramp_curves(frame: pd.DataFrame, depths: Sequence[int], top: int = 5) -> go.Figure:
    fig = go.Figure()
    done = frame[frame["status"] == "completed"]
    leaders = done[done["role"] == "candidate"].head(top)
    paper = done[done["role"] == "baseline:paper"]
    for _, row in pd.concat([leaders, paper]).iterrows():
        ratios = [float(r) for r in row["ch_c_per_block"].split(",")]
        is_paper = row["role"] == "baseline:paper"
        fig.add_trace(go.Scatter(
            x=list(range(len(ratios))), y=ratios, mode="lines+markers",
            name="paper ramp" if is_paper else f"#{row['rank']} trial {row['trial']} "
                                                f"({row['top1']:.2f}%)",
            line=dict(width=4 if is_paper else 2, dash="dash" if is_paper else "solid",
                      color=_PAPER_COLOR if is_paper else None)))
    start = 0
    for depth in depths[:-1]:
        start += depth
        fig.add_vline(x=start - 0.5, line=dict(color="#cccccc"))
    fig.update_layout(title="C_h/C per block: the leaders beside the paper's ramp",
                      xaxis_title="block", yaxis_title="C_h / C (high-frequency share)",
                      yaxis_range=[-0.02, 1.02])
    return fig


def history(study: optuna.Study) -> go.Figure:
    numbers, scores, best, best_so_far = [], [], [], -math.inf
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if trial.user_attrs.get(study_lib.ROLE) != "candidate":
            continue
        numbers.append(trial.number)
        scores.append(trial.values[0])
        best_so_far = max(best_so_far, trial.values[0])
        best.append(best_so_far)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=numbers, y=scores, mode="markers", name="candidate"))
    fig.add_trace(go.Scatter(x=numbers, y=best, mode="lines", name="best so far",
                             line=dict(shape="hv")))
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if trial.user_attrs.get(study_lib.BASELINE) == "paper":
            fig.add_hline(y=trial.values[0], line=dict(color=_PAPER_COLOR, dash="dash"),
                          annotation_text="paper ramp")
    fig.update_layout(title="Optimisation history", xaxis_title="Optuna trial number",
                      yaxis_title="proxy top-1 (%)")
    return fig


def importances(study: optuna.Study) -> go.Figure | None:
    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if t.params and t.user_attrs.get(study_lib.ROLE) == "candidate"]
    if len(trials) < 3:
        return None
    # PED-ANOVA ranks parameters by how much they matter for a *low* target: negate top-1.
    evaluator = optuna.importance.PedAnovaImportanceEvaluator()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = optuna.importance.get_param_importances(
                study, evaluator=evaluator, target=lambda t: -t.values[0])
    except (RuntimeError, ValueError):
        return None
    if not scores:
        return None
    names = list(scores)[::-1]
    fig = go.Figure(go.Bar(x=[scores[n] for n in names], y=names, orientation="h"))
    fig.update_layout(title="Parameter importance for proxy top-1 (PED-ANOVA)",
                      xaxis_title="importance", height=max(320, 22 * len(names)))
    return fig


def reeval_intervals(summary: pd.DataFrame | None) -> go.Figure | None:
    if summary is None or summary.empty:
        return None
    labels = [f"trial {t}" if not str(r).startswith("baseline") else str(r).removeprefix(
        "baseline:") for t, r in zip(summary["trial"], summary["role"])]
    fig = go.Figure(go.Scatter(
        x=summary["mean_top1"], y=labels, mode="markers",
        error_x=dict(type="data", array=summary["ci95"]),
        marker=dict(size=10, color=[_PAPER_COLOR if str(r) == "baseline:paper"
                                    else _CANDIDATE_COLOR for r in summary["role"]])))
    fig.update_layout(title="Re-evaluation: mean top-1 over seeds with 95% intervals",
                      xaxis_title="top-1 (%)", yaxis=dict(autorange="reversed"))
    return fig


def learning_curves(study: optuna.Study, limit: int = 30) -> go.Figure | None:
    fig = go.Figure()
    trials = [t for t in study.get_trials(deepcopy=False) if t.intermediate_values
              and t.user_attrs.get(study_lib.ROLE) in ("candidate", "baseline")]
    for trial in trials[:limit]:
        steps = sorted(trial.intermediate_values)
        name = trial.user_attrs.get(study_lib.BASELINE) or f"trial {trial.number}"
        fig.add_trace(go.Scatter(x=steps, y=[trial.intermediate_values[s] for s in steps],
                                 mode="lines+markers", name=name, opacity=0.8))
    if not trials:
        return None
    fig.update_layout(title="Proxy learning curves", xaxis_title="epoch",
                      yaxis_title="top-1 (%)")
    return fig


def fidelity_scatter(table: pd.DataFrame, summary: pd.DataFrame) -> go.Figure:
    """Proxy against reference seed-mean top-1, one point per ramp with its seed std as error
    bars; baselines labelled."""
    baseline = ~table["label"].str.startswith("sampled_")
    fig = go.Figure()
    for mask, name, color in ((baseline, "baselines", _PAPER_COLOR),
                              (~baseline, "sampled ramps", _CANDIDATE_COLOR)):
        part = table[mask]
        fig.add_trace(go.Scatter(
            x=part["proxy_mean"], y=part["reference_mean"], name=name,
            mode="markers+text" if name == "baselines" else "markers",
            text=list(part["label"]), textposition="top center",
            error_x=dict(type="data", array=part["proxy_std"].fillna(0)),
            error_y=dict(type="data", array=part["reference_std"].fillna(0)),
            marker=dict(size=10, color=color),
            customdata=list(part["ramp"]),
            hovertemplate="%{text}<br>%{customdata}<br>proxy %{x:.2f}%, reference %{y:.2f}%"
                          "<extra></extra>"))
    proxy_row = summary[summary["scorer"] == "proxy"]
    tau = proxy_row["kendall_tau"].iloc[0] if len(proxy_row) else math.nan
    fig.update_layout(title=f"Proxy against reference top-1 (mean ± std over seeds), Kendall "
                            f"tau {tau:+.2f}" if not pd.isna(tau) else
                            "Proxy against reference top-1 (mean ± std over seeds)",
                      xaxis_title="proxy top-1 (%)", yaxis_title="reference top-1 (%)")
    return fig


def fidelity_section(table: pd.DataFrame, summary: pd.DataFrame) -> str:
    """The fidelity tables as HTML: the summary against the reference, then every ramp."""
    def fmt(value: float) -> str:
        return f"{value:.3g}"

    note = ("<p>Kendall tau and Spearman rho rank each scorer against the reference's "
            "seed-mean top-1; the interval is a 95% bootstrap over ramps. noise_std is the "
            "pooled seed standard deviation, spread_std the standard deviation of the ramp "
            "means; seed_tau is the rank agreement of two single seeds.</p>")
    return (note + summary.to_html(index=False, float_format=fmt, na_rep="-")
            + table.drop(columns=["attention_heads"]).to_html(index=False, float_format=fmt,
                                                               na_rep="-"))


def render(title: str, summary_lines: Sequence[str], figures: Sequence[go.Figure],
           table: pd.DataFrame, sections: Sequence[tuple[str, str]] = ()) -> str:
    """The HTML page: plotly.js once, inline, then every figure, the leaderboard (when it has
    rows) and any further (heading, HTML) sections."""
    parts = []
    for index, figure in enumerate(figures):
        figure.update_layout(template="plotly_white", margin=dict(l=60, r=30, t=60, b=50))
        parts.append(figure.to_html(full_html=False, include_plotlyjs=(index == 0),
                                    div_id=f"plot-{index}", config={"displaylogo": False}))
    summary = "".join(f"<li>{html.escape(line)}</li>" for line in summary_lines)
    if not table.empty:
        leaderboard = table.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-")
        sections = [("Leaderboard", leaderboard), *sections]
    extra = "".join(f"<h2>{html.escape(heading)}</h2>{body}" for heading, body in sections)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}}
table{{border-collapse:collapse;font-size:13px}}td,th{{padding:3px 8px;border-bottom:1px solid #ddd;
text-align:right}}td:last-child{{text-align:left;font-family:monospace}}</style></head>
<body><h1>{html.escape(title)}</h1><ul>{summary}</ul>
{''.join(f'<section>{p}</section>' for p in parts)}
{extra}
</body></html>"""


def build_report(study: optuna.Study, frame: pd.DataFrame, depths: Sequence[int],
                 budget_flops: int, reeval: pd.DataFrame | None = None,
                 fidelity: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> tuple[str, int]:
    """The report's HTML and how many plots it holds. ``fidelity`` is the (per-ramp,
    summary) pair of a fidelity measurement; a study may hold only that."""
    figures: list[go.Figure] = []
    lines: list[str] = []
    sections: list[tuple[str, str]] = []
    if not frame.empty:
        figures, lines = search_figures(study, frame, depths, budget_flops, reeval)
    if fidelity is not None and not fidelity[0].empty:
        table, summary = fidelity
        figures.append(fidelity_scatter(table, summary))
        sections.append(("How far the proxy ranking can be trusted", fidelity_section(table,
                                                                                      summary)))
        lines.append(f"fidelity: {len(table)} ramps measured under the proxy and the reference "
                     f"setting")
    shown = frame.drop(columns=["ch_c_per_block"]).head(50) if not frame.empty else frame
    title = f"rampsearch report: {study.study_name}"
    return render(title, lines, figures, shown, sections), len(figures)


def search_figures(study: optuna.Study, frame: pd.DataFrame, depths: Sequence[int],
                   budget_flops: int, reeval: pd.DataFrame | None
                   ) -> tuple[list[go.Figure], list[str]]:
    """The plots and summary lines of a search's trials."""
    figures = [accuracy_vs_flops(frame, budget_flops / 1e9), ramp_curves(frame, depths),
               history(study)]
    figures += [f for f in (learning_curves(study), importances(study),
                            reeval_intervals(reeval)) if f is not None]
    completed = frame[frame["status"] == "completed"]
    paper = completed[completed["role"] == "baseline:paper"]
    lines = [f"{len(frame)} trained ramps ({len(completed)} completed), budget "
             f"{budget_flops / 1e9:.3f} GFLOPs"]
    from .leaderboard import failure_summary

    if failure_summary(frame):
        lines.append(failure_summary(frame))
    if len(paper):
        lines.append(f"paper ramp: proxy top-1 {paper['top1'].iloc[0]:.2f}% at "
                     f"{paper['gflops'].iloc[0]:.3f} GFLOPs"
                     + ("" if paper["within_budget"].iloc[0] else " (over budget)"))
    best = completed[(completed["role"] == "candidate") & completed["within_budget"]]
    if len(best):
        row = best.iloc[0]
        lines.append(f"best searched ramp: trial {row['trial']}, top-1 {row['top1']:.2f}% at "
                     f"{row['gflops']:.3f} GFLOPs: {row['ramp']}")
    lines.append("Proxy scores rank ramps under a short schedule on small images; differences "
                 "smaller than the seed noise (see re-evaluation) do not separate ramps.")
    return figures, lines
