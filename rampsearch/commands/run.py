"""`rampsearch run`: search the frequency ramp under a FLOPs budget, Optuna on Ray."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from pathlib import Path
from typing import Any

from ..data import ProxyData, choose_source
from ..errors import UserError
from ..options import (
    PROXY_FLAGS,
    RACE_DEFAULTS,
    RAY_DEFAULTS,
    HelpFormatter,
    add_budget_resolution,
    add_proxy_arguments,
    add_race_arguments,
    add_ray_arguments,
    check_race_arguments,
    race_request,
    settings_from_args,
)
from ..ranking.race_request import RaceRequest
from ..study import storage as study_lib
from ..study.objective import DEFAULT_OBJECTIVE, OBJECTIVES
from ..study.plan import SearchPlan, build_plan, check_seed
from ..study.samplers import SAMPLERS, make_sampler
from ..study.stored import stored_options
from ..training.fields import read_mapping_file
from ..training.proxy import ProxySettings, default_settings, load_data_for

# The built-in defaults, and the options a --config file may set (besides the proxy flags).
DEFAULTS: dict[str, Any] = {
    "budget": None, "budget_resolution": "224", "base": None, "space": "monotone",
    "data": "auto", "trials": None, "strategy": "standalone", "supernet": "default",
    "sampler": "tpe", "study": None, "storage": None,
    "results": "results", "scheduler": "none", "seed": 0, "objective": DEFAULT_OBJECTIVE,
    **RAY_DEFAULTS, **RACE_DEFAULTS,
}

# Candidates a search scores when --trials is not given: stand-alone trainings are dear.
TRIALS = {"standalone": 7, "oneshot": 1000}
STRATEGIES = tuple(TRIALS)

HELP = "search ramps under a FLOPs budget"
# argparse folds the lines of a description into paragraphs of its own width.
DESCRIPTION = """\
Search the per-block ratio C_h/C of iFormer under a FLOPs budget: Optuna proposes ramps, Ray
trains each under a short proxy schedule, the study is stored in Optuna RDB storage
(results/<study>/study.db). The paper's ramp and the ablation baselines are trained under
the same proxy. Options come from the flags, then --config, then (with --resume) the study's
stored settings, then the defaults shown here.
"""
FORMATTER = HelpFormatter  # "(default: X)" after an option's help


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--budget", help="FLOPs budget, e.g. 4.8GFLOPs, 4800MFLOPs, 4.8e9 or 4.8GMACs; one "
                         "multiply-add counts as one FLOP, as in the iFormer paper; required "
                         "unless --config or the resumed study gives it")
    add_budget_resolution(parser)
    add("--base", help="iformer_small/base/large or a model YAML (default: the preset whose "
                       "ramp range contains the budget)")
    add("--space", help="search space: free, monotone, stagewise, smooth, or a YAML file")
    add("--data", help="imagenette (made once by `rampsearch data get imagenette`), "
                       "fashion-mnist, synthetic, or a folder made by `rampsearch data "
                       "prepare`; auto: imagenette where it is prepared, else fashion-mnist")
    add("--trials", type=int, help="feasible candidate ramps to score, besides the baselines "
                                   "(default: 7 stand-alone, 1000 one-shot)")
    add("--strategy", choices=STRATEGIES,
        help="standalone: every candidate trains on its own under the proxy; oneshot: one "
             "weight-sharing supernet trains once (checkpoint beside the study) and each "
             "candidate is scored by its subnet with inherited weights, in well under a "
             "second; the race after either trains stand-alone (docs/oneshot.md says how far "
             "supernet scores were measured to agree with stand-alone training)")
    add("--supernet", metavar="SETTINGS",
        help="with --strategy oneshot: key=value pairs over the supernet's defaults, e.g. "
             "epochs=4,strategy=fair,score_samples=500 (strategy uniform, fair or sandwich; "
             "distillation true/false; score_samples: validation images a score uses, 0 for "
             "all), or a YAML file (default: the defaults named)")
    add("--objective", choices=tuple(OBJECTIVES),
        help="score the sampler optimises and the leaderboard and race rank by; both are "
             "always recorded (val_loss: the final validation cross-entropy, measured to "
             "rank ramps more reliably than top-1; see docs/fidelity.md)")
    add("--sampler", choices=SAMPLERS, help="tpe; nsga2 for the objective vs FLOPs as two "
                                            "objectives; random; gp; cmaes (smooth space only)")
    add("--study", help="study name (default: <base>-<space>-<budget>-<time>)")
    add("--storage", help="Optuna RDB URL or journal file (default: sqlite:///results/<study>/"
                          "study.db)")
    add("--results", help="output folder")
    add("--scheduler", choices=("asha", "none"), help="asha stops weak trials between epochs; "
                                                       "they are never ranked above full ones")
    add("--seed", type=int, help="seed of the sampler and of every search training; the "
                                 "race trains with the seeds after it, never this one")
    add("--resume", action="store_true", help="continue a study (default: the latest) to "
                                              "--trials after Ctrl-C or a crash, with its "
                                              "stored settings")
    add("--config", type=Path, help="YAML file with any of these options (flags win)")
    add_ray_arguments(parser)
    race = parser.add_argument_group(
        "race (after the search: the leaders against the paper's ramp, paired seeds)")
    add_race_arguments(race, reeval_top=RACE_DEFAULTS["reeval_top"])
    add_proxy_arguments(parser)
    # The layers of defaults above the built-in ones, highest first (``cli.parse_args``).
    parser.set_defaults(default_layers=(config_options, resumed_options),
                        typed_layers=(resumed_options,), stored_proxy=None,
                        stored_supernet=None,
                        **DEFAULTS)


# ----------------------------------------------------------------------------- options
def config_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options of the --config file (keys as flags, - or _), or none without one."""
    if args.config is None:
        return {}
    data = read_mapping_file(
        args.config,
        unreadable=lambda exc: f"cannot read --config {args.config}: {exc.strerror}.",
        invalid=lambda exc: f"--config {args.config} is not valid YAML: {exc}",
        not_mapping=f"--config {args.config} must be a mapping of option names to values.",
        empty_ok=True)
    known = set(DEFAULTS) | set(PROXY_FLAGS)
    options = {}
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        if dest not in known:
            raise UserError(f"--config {args.config}: unknown option {key!r}; use the long "
                            f"names of `rampsearch run` options, e.g. budget, trials, space.")
        options[dest] = value
    return options


def resumed_options(args: argparse.Namespace) -> dict[str, Any]:
    """With --resume, the options the study was started with; its proxy settings, those
    without a flag too (validation samples, warmup, ...), as the base of the proxy flags."""
    if not args.resume:
        return {}
    stored = stored_options(study_lib.find_study(Path(args.results), args.study))
    proxy = stored.pop("proxy")
    supernet = stored.pop("supernet")
    return {**stored, "stored_proxy": proxy, "stored_supernet": supernet,
            "strategy": "standalone" if supernet is None else "oneshot"}


def check_arguments(args: argparse.Namespace) -> None:
    """What the parser cannot check alone (a --config file gives values of any type)."""
    if args.budget is None:
        raise UserError("--budget is required, e.g. `rampsearch run --budget 4.8GFLOPs` "
                        "(one multiply-add counts as one FLOP).")
    if args.strategy not in STRATEGIES:
        raise UserError(f"--strategy {args.strategy!r} is not known; use one of "
                        f"{', '.join(STRATEGIES)}.")
    if args.trials is None:
        args.trials = TRIALS[args.strategy]
    if isinstance(args.trials, bool) or not isinstance(args.trials, int) or args.trials < 1:
        raise UserError(f"--trials {args.trials}: give at least 1 candidate to train.")
    check_race_arguments(args)


# ---------------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our progress lines say it better
    check_arguments(args)
    args.data, data_note = choose_source(str(args.data))
    proxy = search_proxy(args)
    plan = build_plan({**vars(args), "supernet": supernet_settings(args)}, proxy)
    sampler = make_sampler(args.sampler, args.seed, args.trials, plan.space.family,
                           cheap_trials=plan.settings.supernet is not None)
    data = load_data_for(str(args.data), proxy)  # the same images for every trial
    from ..cluster.connection import ray_session  # imports Ray
    from ..cluster.jobs import search_study

    # What the storage would refuse is refused before Ray starts; then Ray: the cluster must
    # be able to run a trial before anything is written. It is kept up for the search and
    # its race.
    study_lib.check_study_can_start(plan.location, plan.settings, resume=args.resume)
    with contextlib.ExitStack() as session:
        session.enter_context(ray_session(plan))
        study = study_lib.create_or_check_study(plan.location, plan.settings, sampler,
                                                resume=args.resume)
        study_lib.lock_study(plan.location)  # a second driver on this study is refused
        study_lib.write_run_file(plan.location, plan.settings, args.trials)
        print_plan(plan, data, args.reeval_top, args.max_seeds, data_note)
        if plan.settings.supernet is None:
            outcome = search_study(study, plan, data, session)
        else:
            from ..cluster.oneshot import oneshot_study

            outcome = oneshot_study(study, plan, data)
        code = print_summary(study, plan, outcome)
        if code == 0 and args.reeval_top:
            code = race_leaders(race_request(args), plan, study, data, session)
    return code


def search_proxy(args: argparse.Namespace) -> ProxySettings:
    """The search trainings' proxy settings: the flags over the resumed study's or the data
    set's defaults; in a new study --seed is their seed (a resumed study keeps the seed its
    trials were trained with)."""
    proxy = settings_from_args(args, base=ProxySettings.from_dict(args.stored_proxy)
                               if args.stored_proxy else default_settings(args.data))
    if args.stored_proxy:
        return proxy
    check_seed(args.seed)
    return dataclasses.replace(proxy, seed=int(args.seed))


def supernet_settings(args: argparse.Namespace) -> dict[str, Any] | None:
    """With --strategy oneshot, the supernet's settings: --supernet over the resumed
    study's or the defaults; None for a stand-alone search (where --supernet is refused)."""
    from ..fidelity.settings import parse_settings
    from ..oneshot import SupernetSettings

    if args.strategy != "oneshot":
        if args.supernet not in (None, "default"):
            raise UserError("--supernet sets the one-shot strategy's supernet; add "
                            "--strategy oneshot, or drop --supernet.")
        return None
    base = (SupernetSettings.from_dict(args.stored_supernet) if args.stored_supernet
            else SupernetSettings())
    return parse_settings(str(args.supernet or "default"), base=base, flag="--supernet",
                          kind=SupernetSettings).to_dict()


def race_leaders(request: RaceRequest, plan: SearchPlan, study: Any, data: ProxyData,
                 session: contextlib.ExitStack) -> int:
    """The race that ends a search: its leaders against the paper's ramp, paired seeds."""
    from ..cluster.race_driver import run_race
    from ..ranking.leaderboard import leaderboard
    from ..ranking.race_request import plan_race, race_header, race_summary
    from ..reporting.report_file import write_report

    try:
        race = plan_race(study, plan, leaderboard(study, plan.space.base.depths), request)
    except UserError as exc:  # nothing to race (e.g. the paper's ramp failed): say so
        print(f"\nrace       not run: {exc}")
        return 0
    print(race_header(race), flush=True)
    result, interrupted = run_race(study, race, session, data)
    print(race_summary(result, plan.location.folder / "reeval.csv", interrupted))
    print(f"report     {write_report(plan.location)}")
    if interrupted:
        print_resume(plan)
        return 130
    return 0


def print_plan(plan: SearchPlan, data: ProxyData, race_top: int, max_seeds: int,
               data_note: str | None = None) -> None:
    from search_spaces import format_flops

    space, proxy, check = plan.space, plan.proxy, plan.check
    lines = [
        f"study      {plan.location.name}   ({plan.location.storage_url})",
        f"base       {space.base_name}  depths {space.base.depths}  dims {space.base.embed_dims}",
        f"space      {space.name} ({space.family}): {space.size():,} ramps, FLOPs "
        f"{format_flops(check.min_flops)} .. {format_flops(check.max_flops)} at "
        f"{plan.budget.img_size[0]}x{plan.budget.img_size[1]}",
        f"budget     {format_flops(plan.budget.flops)}" + (f"  ({check.note})" if check.note
                                                          else ""),
        f"data       {plan.settings.data}" + (f"  ({data_note})" if data_note else ""),
        f"proxy      width {proxy.width}, {proxy.resolution}px, {proxy.epochs} epochs, "
        f"{len(data.train_labels):,} train / {len(data.val_labels):,} val images of "
        f"{data.manifest.get('source', '?')} ({data.num_classes} classes), batch "
        f"{proxy.batch_size}, lr {proxy.lr}, seed {proxy.seed}",
        f"trials     {plan.trials} candidates + {len(space.baselines())} baselines "
        f"(paper ramp and ablations), sampler {plan.settings.sampler}, scheduler "
        f"{plan.settings.scheduler}",
        *supernet_lines(plan, data),
        f"objective  {plan.objective.key} ({'higher' if plan.objective.maximize else 'lower'} "
        f"is better; val loss and top-1 both recorded)",
        "race       " + (f"then the top {race_top} and the paper's ramp, up to {max_seeds} "
                         f"fresh paired seeds each" if race_top else "none (--reeval-top 0)"),
        f"workers    {plan.max_concurrent or 'as many as the cluster allows'} in parallel, "
        f"{plan.cpus_per_trial:g} CPU"
        + (f" + {plan.gpus_per_trial:g} GPU" if plan.gpus_per_trial else "") + " per trial, "
        + (f"Ray at {plan.ray_address}" if plan.ray_address else "local Ray"),
    ]
    print("\n".join(lines), flush=True)
    # How far a ranking at these proxy settings can be trusted (measured, docs/fidelity.md).
    from ..fidelity.settings import trust_warning

    warning = trust_warning(proxy, plan.settings.data)
    if warning:
        print(warning, flush=True)
    if plan.settings.supernet is not None:
        from ..fidelity.settings import supernet_note

        print(supernet_note(), flush=True)


def supernet_lines(plan: SearchPlan, data: ProxyData) -> list[str]:
    """The plan's line on the one-shot supernet (none for a stand-alone search)."""
    if plan.settings.supernet is None:
        return []
    from ..oneshot import SupernetSettings

    supernet = SupernetSettings.from_dict(plan.settings.supernet)
    images = min(supernet.score_samples or len(data.val_labels), len(data.val_labels))
    return [f"strategy   oneshot: a supernet trains {supernet.epochs} epochs of the proxy's "
            f"batches ({supernet.strategy} ramp sampling"
            + (", in-place distillation" if supernet.distillation else "") + f"), then each "
            f"candidate is scored by its subnet on {images:,} validation images; the race "
            f"trains stand-alone"]


def print_summary(study: Any, plan: SearchPlan, outcome: Any) -> int:
    from ..ranking.leaderboard import failure_summary, format_table, leaderboard

    if outcome.recovered:
        print(f"recovered {len(outcome.recovered)} interrupted trial(s) from the last run: "
              f"{outcome.recovered}")
    frame = leaderboard(study, plan.space.base.depths)
    print()
    print(format_table(frame, limit=10))
    if failure_summary(frame):
        print(failure_summary(frame))
    folder = plan.location.folder
    from ..reporting.report_file import write_report

    print()
    if not frame.empty:
        frame.to_csv(folder / "leaderboard.csv", index=False)
        print(f"leaderboard    {folder / 'leaderboard.csv'}")
        print(f"report         {write_report(plan.location)}")
    print(f"study storage  {plan.location.storage_url}")
    print(f"run settings   {folder / study_lib.RUN_FILE}")
    print(f"ray logs       {folder / 'ray'}")
    print(f"dashboard      rampsearch dashboard --study {plan.location.name}" + results_flag(plan))
    if outcome.interrupted:
        print_resume(plan)
        return 130
    if plan.settings.supernet is not None:
        return converged_note(study, plan)
    return lost_work_note(study, plan)


def converged_note(study: Any, plan: SearchPlan) -> int:
    """A one-shot search that ended before --trials distinct ramps: its sampler proposed only
    ramps already scored (MAX_REPEATS in a row). Said, not an error: every score is kept."""
    from ..oneshot.search import MAX_REPEATS
    from ..study.trials import work_left

    _, missing = work_left(study, plan)
    if missing:
        print(f"\nsampler converged: its last {MAX_REPEATS} proposals were ramps already "
              f"scored, so the search ended at {plan.trials - missing} of {plan.trials} "
              f"distinct ramps; --sampler random explores without converging.")
    return 0


def results_flag(plan: SearchPlan) -> str:
    """`` --results DIR`` for a command that finds this study again; none for the default."""
    results = plan.location.results_dir
    return f" --results {results}" if str(results) != "results" else ""


def print_resume(plan: SearchPlan) -> None:
    print(f"\ninterrupted: finished trials are kept; continue with\n  rampsearch run --resume "
          f"--study {plan.location.name}" + results_flag(plan), file=sys.stderr)


def lost_work_note(study: Any, plan: SearchPlan) -> int:
    """1, with the resume command, when trainings are still missing because their Ray worker
    died more often than --worker-retries allowed; 0 when the study has everything."""
    from ..study.trials import work_left

    baselines, candidates = work_left(study, plan)
    if not baselines and not candidates:
        return 0
    missing = [job.label for job in baselines] + ([f"{candidates} candidate(s)"]
                                                  if candidates else [])
    print(f"\nnot trained, their Ray worker died more than --worker-retries "
          f"{plan.worker_retries} times: {', '.join(missing)}; train them with\n  rampsearch "
          f"run --resume --study {plan.location.name}" + results_flag(plan), file=sys.stderr)
    return 1
