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

from ..attributes import PAPER, Attr, Role, Status
from ..fidelity.tables import PAPER_LABEL
from ..ranking.race import RaceRules
from ..ranking.race_results import RaceResult, format_race, percent, verdict_paragraph
from ..study import storage as study_lib
from ..study.objective import OBJECTIVES, Objective, format_number

_PAPER_COLOR = "#d62728"
_CANDIDATE_COLOR = "#1f77b4"
_OVER_COLOR = "#b0b0b0"


def score_vs_flops(frame: pd.DataFrame, budget_gflops: float, objective: Objective
                   ) -> go.Figure:
    """The objective of every completed ramp against its FLOPs, the budget and the front."""
    key, title = objective.key, f"proxy {objective.title}"
    done = frame[frame["status"] == Status.COMPLETED]
    fig = go.Figure()
    candidates = done[done["role"] == Role.CANDIDATE]
    fig.add_trace(go.Scatter(
        x=candidates["gflops"], y=candidates[key], mode="markers", name="searched ramps",
        marker=dict(size=9, color=[_CANDIDATE_COLOR if b else _OVER_COLOR
                                   for b in candidates["within_budget"]]),
        text=[f"trial {t}<br>{r}" for t, r in zip(candidates["trial"], candidates["ramp"])],
        hovertemplate=f"%{{text}}<br>%{{x:.3f}} GFLOPs, {title} %{{y:.4g}}<extra></extra>"))
    baselines = done[done["role"] != Role.CANDIDATE]
    fig.add_trace(go.Scatter(
        x=baselines["gflops"], y=baselines[key], mode="markers+text", name="baselines",
        marker=dict(size=12, symbol="diamond", color=_PAPER_COLOR),
        text=[r.removeprefix("baseline:") for r in baselines["role"]], textposition="top center",
        hovertemplate=f"%{{text}}<br>%{{x:.3f}} GFLOPs, {title} %{{y:.4g}}<extra></extra>"))
    front = done[done["pareto"]].sort_values("gflops")
    fig.add_trace(go.Scatter(x=front["gflops"], y=front[key], mode="lines",
                             name="Pareto front", line=dict(dash="dot", color="#2ca02c")))
    fig.add_vline(x=budget_gflops, line=dict(color="black", dash="dash"),
                  annotation_text=f"budget {budget_gflops:.3f} G")
    fig.update_layout(title=f"Objective: {title} against FLOPs ({objective.direction}d)",
                      xaxis_title="GFLOPs at the budget's resolution", yaxis_title=title)
    return fig


def ramp_curves(frame: pd.DataFrame, depths: Sequence[int], objective: Objective,
                top: int = 5) -> go.Figure:
    fig = go.Figure()
    done = frame[frame["status"] == Status.COMPLETED]
    leaders = done[done["role"] == Role.CANDIDATE].head(top)
    paper = done[done["role"] == PAPER]
    for _, row in pd.concat([leaders, paper]).iterrows():
        ratios = [float(r) for r in row["ch_c_per_block"].split(",")]
        is_paper = row["role"] == PAPER
        fig.add_trace(go.Scatter(
            x=list(range(len(ratios))), y=ratios, mode="lines+markers",
            name="paper ramp" if is_paper else f"#{row['rank']} trial {row['trial']} "
                                                f"({objective.format(row[objective.key])})",
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


def history(study: optuna.Study, objective: Objective) -> go.Figure:
    numbers, scores, best, best_so_far = [], [], [], math.nan
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if trial.user_attrs.get(Attr.ROLE) != Role.CANDIDATE:
            continue
        numbers.append(trial.number)
        scores.append(trial.values[0])
        best_so_far = objective.best([best_so_far, trial.values[0]])
        best.append(best_so_far)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=numbers, y=scores, mode="markers", name="candidate"))
    fig.add_trace(go.Scatter(x=numbers, y=best, mode="lines", name="best so far",
                             line=dict(shape="hv")))
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if trial.user_attrs.get(Attr.BASELINE) == "paper":
            fig.add_hline(y=trial.values[0], line=dict(color=_PAPER_COLOR, dash="dash"),
                          annotation_text="paper ramp")
    fig.update_layout(title=f"Optimisation history of the objective ({objective.key})",
                      xaxis_title="Optuna trial number", yaxis_title=f"proxy {objective.title}")
    return fig


def importances(study: optuna.Study, objective: Objective) -> go.Figure | None:
    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if t.params and t.user_attrs.get(Attr.ROLE) == Role.CANDIDATE]
    if len(trials) < 3:
        return None
    # PED-ANOVA ranks parameters by how much they matter for a *low* target.
    evaluator = optuna.importance.PedAnovaImportanceEvaluator()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = optuna.importance.get_param_importances(
                study, evaluator=evaluator, target=lambda t: -objective.sign() * t.values[0])
    except (RuntimeError, ValueError):
        return None
    if not scores:
        return None
    names = list(scores)[::-1]
    fig = go.Figure(go.Bar(x=[scores[n] for n in names], y=names, orientation="h"))
    fig.update_layout(title=f"Parameter importance for the objective, {objective.key} "
                            f"(PED-ANOVA)",
                      xaxis_title="importance", height=max(320, 22 * len(names)))
    return fig


def interval_bars(mean: pd.Series, low: pd.Series, high: pd.Series) -> dict:
    """Plotly error bars drawing each point's interval [low, high] (none where unknown)."""
    return dict(type="data", symmetric=False, array=(high - mean).fillna(0),
                arrayminus=(mean - low).fillna(0))


def race_intervals(race: RaceResult | None) -> go.Figure | None:
    """Each leader's paired difference to the paper's ramp with the verdict's interval, round
    by round: the intervals narrow as seeds are added, and a dropped leader stops."""
    if race is None or race.history.empty:
        return None
    objective = race.objective
    rows = race.history[race.history["contestant"] != race.paper["trial"]]
    fig = go.Figure()
    for contestant, part in rows.groupby("contestant", sort=False):
        fig.add_trace(go.Scatter(
            x=part["seeds"], y=part["diff_vs_paper"], mode="lines+markers",
            name=f"trial {contestant}",
            error_y=interval_bars(part["diff_vs_paper"], part["diff_low"], part["diff_high"]),
            text=list(part["verdict"]),
            hovertemplate="%{x} seeds: %{y:+.4g} (%{text})<extra></extra>"))
    fig.add_hline(y=0, line=dict(color=_PAPER_COLOR, dash="dash"), annotation_text="paper ramp")
    better = "below" if not objective.maximize else "above"
    rules = race.rules or RaceRules(())
    fig.update_layout(title=f"Race: paired difference to the paper's ramp per round, "
                            f"{percent(rules.verdict_level)} intervals ({objective.key}; "
                            f"better is {better} 0)<br><sup>before its last round the race "
                            f"stops or drops a leader only at "
                            f"{percent(rules.corrected(rules.interim_level))}</sup>",
                      xaxis_title="paired seeds", yaxis_title=f"{objective.title} − paper's")
    return fig


def learning_curves(study: optuna.Study, objective: Objective, limit: int = 30
                    ) -> go.Figure | None:
    fig = go.Figure()
    trials = [t for t in study.get_trials(deepcopy=False) if t.intermediate_values
              and t.user_attrs.get(Attr.ROLE) in (Role.CANDIDATE, Role.BASELINE)]
    for trial in trials[:limit]:
        steps = sorted(trial.intermediate_values)
        name = trial.user_attrs.get(Attr.BASELINE) or f"trial {trial.number}"
        fig.add_trace(go.Scatter(x=steps, y=[trial.intermediate_values[s] for s in steps],
                                 mode="lines+markers", name=name, opacity=0.8))
    if not trials:
        return None
    fig.update_layout(title=f"Proxy learning curves ({objective.key})", xaxis_title="epoch",
                      yaxis_title=objective.title)
    return fig


def fidelity_scatter(table: pd.DataFrame, summary: pd.DataFrame, score: str
                     ) -> go.Figure | None:
    """The first proxy against the reference, seed means of ``score`` with their seed std as
    error bars, one point per ramp; baselines labelled. None until both have results (the
    reference trains first)."""
    if not {"proxy_mean", "reference_mean"} <= set(table.columns):
        return None
    title = OBJECTIVES[score].title
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
            hovertemplate="%{text}<br>%{customdata}<br>proxy %{x:.4g}, reference %{y:.4g}"
                          "<extra></extra>"))
    proxy_row = summary[summary["scorer"] == "proxy"]
    tau = proxy_row["kendall_tau"].iloc[0] if len(proxy_row) else math.nan
    ceiling = proxy_row["tau_ceiling"].iloc[0] if len(proxy_row) else math.nan
    heading = f"Proxy against reference {title} (mean ± std over seeds)"
    if not pd.isna(tau):
        heading += f", Kendall tau {tau:+.2f}" + (
            "" if pd.isna(ceiling) else f" (a perfect proxy: {ceiling:+.2f} through the noise)")
    fig.update_layout(title=heading,
                      xaxis_title=f"proxy {title}", yaxis_title=f"reference {title}")
    return fig


def fidelity_versus_paper(table: pd.DataFrame, score: str) -> go.Figure | None:
    """Each ramp's paired difference to the paper's ramp under every setting, with its 95%
    interval: where the proxy's verdicts hold under the reference and where they do not."""
    names = [c.removesuffix("_verdict") for c in table.columns if c.endswith("_verdict")]
    rows = table[table["label"] != PAPER_LABEL]
    if rows.empty or not names:
        return None
    objective = OBJECTIVES[score]
    fig = go.Figure()
    for name in names:
        mean = rows[f"{name}_vs_paper"]
        fig.add_trace(go.Scatter(
            x=mean, y=list(rows["label"]), mode="markers", name=name, orientation="h",
            error_x=interval_bars(mean, rows[f"{name}_vs_paper_low"],
                                  rows[f"{name}_vs_paper_high"]),
            text=list(rows[f"{name}_verdict"]), marker=dict(size=9),
            hovertemplate=f"%{{y}} under {name}: %{{x:+.4g}} (%{{text}})<extra></extra>"))
    fig.add_vline(x=0, line=dict(color=_PAPER_COLOR, dash="dash"))
    better = "right" if objective.maximize else "left"
    fig.update_layout(title=f"Paired difference to the paper's ramp, same seeds, 95% intervals "
                            f"({score}; better is {better} of 0)",
                      xaxis_title=f"{objective.title} − paper's", scattermode="group",
                      yaxis=dict(autorange="reversed"),  # the reference's best ramp on top
                      height=max(360, 30 * len(rows) * len(names)))
    return fig


def fidelity_section(fidelity: dict[str, tuple[pd.DataFrame, pd.DataFrame]]) -> str:
    """The fidelity tables as HTML, per score: the summary against the reference, then every
    ramp."""
    def fmt(value: float) -> str:
        return f"{value:.3g}"

    note = ("<p>Kendall tau and Spearman rho rank each scorer against the reference's "
            "seed-mean score; the interval is a 95% bootstrap over ramps. noise_std is the "
            "pooled seed standard deviation, blocked_noise_std the residual once the seed "
            "effects shared by every ramp are removed (two-way ramp + seed analysis), "
            "spread_std the standard deviation of the ramp means; reliability_S_seeds is "
            "1 − noise²/(S·spread²), seed-blocked; seed_tau is the rank agreement of two "
            "single seeds; tau_ceiling is the tau that a proxy ranking exactly like the "
            "reference would reach through both settings' seed noise, "
            "(2/π)·asin(√(reliability · reference reliability)).</p>")
    parts = [note]
    for score, (table, summary) in fidelity.items():
        parts.append(f"<h3>by {html.escape(score)}</h3>")
        parts.append(summary.to_html(index=False, float_format=fmt, na_rep="-"))
        parts.append(table.drop(columns=["attention_heads"]).to_html(
            index=False, float_format=fmt, na_rep="-"))
    return "".join(parts)


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
                 budget_flops: int, race: RaceResult | None = None,
                 fidelity: dict[str, tuple[pd.DataFrame, pd.DataFrame]] | None = None
                 ) -> tuple[str, int]:
    """The report's HTML and how many plots it holds. ``race`` is the study's race of its
    leaders against the paper's ramp; ``fidelity`` the (per-ramp, summary) pair of a fidelity
    measurement by score; a study may hold only that."""
    figures: list[go.Figure] = []
    lines: list[str] = []
    sections: list[tuple[str, str]] = []
    if not frame.empty:
        figures, lines = search_figures(study, frame, depths, budget_flops, race)
    if race is not None and not race.table.empty:
        sections.append(("Race against the paper's ramp", race_section(race)))
    if fidelity:
        for score, (table, summary) in fidelity.items():
            for figure in (fidelity_scatter(table, summary, score),
                           fidelity_versus_paper(table, score)):
                if figure is not None:
                    figures.append(figure)
        sections.append(("How far the proxy ranking can be trusted",
                         fidelity_section(fidelity)))
        lines.append(f"fidelity: {len(table)} ramps measured under the proxy and the reference "
                     f"setting, ranked by {' and '.join(fidelity)}")
    shown = frame.drop(columns=["ch_c_per_block"]).head(50) if not frame.empty else frame
    title = f"rampsearch report: {study.study_name}"
    return render(title, lines, figures, shown, sections), len(figures)


def race_section(race: RaceResult) -> str:
    """The race's verdict and table as HTML."""
    verdict = " ".join(line.strip() for line in verdict_paragraph(race).splitlines())
    return (f"<p>{html.escape(verdict.removeprefix('verdict').strip())}</p>"
            f"<pre>{html.escape(format_race(race))}</pre>")


def search_figures(study: optuna.Study, frame: pd.DataFrame, depths: Sequence[int],
                   budget_flops: int, race: RaceResult | None
                   ) -> tuple[list[go.Figure], list[str]]:
    """The plots and summary lines of a search's trials."""
    objective = study_lib.study_settings(study).objective
    figures = [score_vs_flops(frame, budget_flops / 1e9, objective),
               ramp_curves(frame, depths, objective), history(study, objective)]
    figures += [f for f in (learning_curves(study, objective), importances(study, objective),
                            race_intervals(race)) if f is not None]
    completed = frame[frame["status"] == Status.COMPLETED]
    paper = completed[completed["role"] == PAPER]
    lines = [f"{len(frame)} trained ramps ({len(completed)} completed), budget "
             f"{budget_flops / 1e9:.3f} GFLOPs; objective: {objective.key} "
             f"({objective.direction}d); both val loss and top-1 are recorded"]
    from ..ranking.leaderboard import failure_summary

    if failure_summary(frame):
        lines.append(failure_summary(frame))
    if len(paper):
        lines.append(f"paper ramp: proxy val loss {format_number(paper['val_loss'].iloc[0], '.4f')}, "
                     f"top-1 {format_number(paper['top1'].iloc[0], '.2f')}% at "
                     f"{paper['gflops'].iloc[0]:.3f} GFLOPs"
                     + ("" if paper["within_budget"].iloc[0] else " (over budget)"))
    best = completed[(completed["role"] == Role.CANDIDATE) & completed["within_budget"]]
    if len(best):
        row = best.iloc[0]
        lines.append(f"best searched ramp by the objective (one seed): trial {row['trial']}, "
                     f"val loss {format_number(row['val_loss'], '.4f')}, top-1 {format_number(row['top1'], '.2f')}% at "
                     f"{row['gflops']:.3f} GFLOPs: {row['ramp']}")
    if race is not None and not race.table.empty:
        lines.append(" ".join(verdict_paragraph(race).removeprefix("verdict").split()))
    else:
        lines.append("One seed per ramp: differences smaller than the seed noise do not "
                     "separate ramps; `rampsearch rank --reeval-top K` races the leaders.")
    return figures, lines


