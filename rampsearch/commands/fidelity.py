"""`rampsearch fidelity`: how well a proxy setting ranks ramps, measured against a reference."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from pathlib import Path
from typing import Any

from ..attributes import StudyAttr
from ..data import AUTO, choose_source
from ..errors import UserError
from ..options import HelpFormatter, add_budget_resolution, add_ray_arguments, ray_options
from ..study import storage as study_lib
from ..study.objective import DEFAULT_OBJECTIVE, OBJECTIVES
from ..study.plan import budget_resolution, check_resources
from ..training.proxy import default_settings

# The reference by data set. More data, not only more epochs: small data sets favour
# convolution's prior, which a longer schedule on the same images cannot reveal
# (docs/fidelity.md). On Fashion-MNIST all 60,000 images once; on Imagenette the whole train
# split four times at 96 px (4x the default proxy's steps at 2.25x its pixels).
DEFAULT_REFERENCE = {
    "fashion-mnist": {"train_samples": 60000, "epochs": 1, "val_samples": 10000},
    "imagenette": {"train_samples": 9469, "epochs": 4, "val_samples": 3925, "resolution": 96},
}


HELP = "measure how well a proxy setting ranks ramps against a reference"
# argparse folds the lines of a description into paragraphs of its own width.
DESCRIPTION = """\
Train K ramps (the paper's ramp, the ablation baselines and ramps drawn from the space by
--seed) with S seeds under the --proxy setting and R under the --reference setting on Ray,
then compare the two rankings of the seed means (validation loss and top-1): Kendall tau
with a bootstrap interval, Spearman rho, seed-blocked reliability of each setting, seed
noise against the spread between ramps, top-k overlap and CPU-minutes per trial; zero-cost
scores of the same ramps are ranked against the reference too. Runs are kept in the study
storage: running the same command again trains only what is missing. SETTINGS is 'default',
key=value pairs of proxy settings (epochs=12,width=0.5) or a YAML file; --reference pairs
change the --proxy setting.
"""
FORMATTER = HelpFormatter  # "(default: X)" after an option's help


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--base", default="iformer_small", help="iformer_small/base/large or a model YAML")
    add("--space", default="monotone", help="space the sampled ramps come from")
    add("--budget", help="sample only ramps within this FLOPs budget, e.g. 4.8GFLOPs "
                         "(baselines are measured in budget or not; default: no budget)")
    add_budget_resolution(parser)
    add("--samples", type=int, default=8, metavar="K",
        help="ramps to measure: the 5 baselines, then ramps drawn from the space")
    add("--seeds", type=int, default=2, metavar="S", help="seeds per ramp and proxy setting")
    add("--reference-seeds", type=int, metavar="R",
        help="seeds per ramp of the reference (default: --seeds). The reference needs enough "
             "seeds to rank the ramps itself (its reliability is printed); a proxy is judged "
             "at the seeds a search would give it, so raising only this one costs least")
    add("--seed", type=int, default=0, help="seed that draws the sampled ramps")
    add("--data", default="auto", help="imagenette, fashion-mnist, synthetic or a prepared "
                                       "folder; auto: imagenette where `rampsearch data get "
                                       "imagenette` prepared it, else fashion-mnist")
    add("--proxy", action="append", metavar="SETTINGS",
        help="a setting under test; repeat it to compare several on the same ramps (named "
             "proxy, proxy2, ... in the tables; default: one, 'default')")
    add("--supernet", action="append", metavar="SETTINGS",
        help="a one-shot supernet under test (supernet settings as key=value pairs, e.g. "
             "strategy=fair,epochs=4, or 'default'); repeat it to compare sampling strategies "
             "and tricks (named supernet, supernet2, ...). Each trains --seeds times on the "
             "first --proxy's data and batches, then scores every ramp by its subnet")
    add("--reference", metavar="SETTINGS",
        help="the trusted setting; pairs change the first --proxy setting (default on "
             "imagenette: train_samples=9469,epochs=4,val_samples=3925,resolution=96, the "
             "whole train split four times at 96 px; on fashion-mnist: train_samples=60000,"
             "epochs=1,val_samples=10000, all its training images once)")
    add("--objective", default=DEFAULT_OBJECTIVE, choices=tuple(OBJECTIVES),
        help="score the learning curves record (both final scores are always ranked)")
    add("--no-zero-cost", dest="zero_cost", action="store_false",
        help="skip the zero-cost scores")
    add("--no-train", dest="train", action="store_false",
        help="train nothing: tables and report of what the study holds (e.g. after Ctrl-C)")
    add("--study", help="study name (default: fidelity-<base>-<space>[-<budget>])")
    add("--results", default="results", type=Path, help="output folder")
    add_ray_arguments(parser)


def check_arguments(args: argparse.Namespace) -> None:
    if args.seeds < 1:
        raise UserError(f"--seeds {args.seeds}: give at least 1 (2 or more to measure seed "
                        f"noise).")
    if args.reference_seeds is not None and args.reference_seeds < 1:
        raise UserError(f"--reference-seeds {args.reference_seeds}: give at least 1 (2 or more "
                        f"to measure the reference's seed noise).")
    if args.samples < 1:
        raise UserError(f"--samples {args.samples}: give at least 1 ramp to measure.")
    check_resources(vars(args))


def resolve_settings(args: argparse.Namespace) -> tuple[dict[str, Any], Any]:
    """({name: settings} of the proxies, in order: proxy, proxy2, ...; the reference)."""
    from ..fidelity.settings import parse_settings, proxy_name

    texts = args.proxy or ["default"]
    base = default_settings(args.data)
    proxies = {proxy_name(i): parse_settings(text, base=base, flag="--proxy")
               for i, text in enumerate(texts)}
    first = proxies["proxy"]
    if args.reference is None:
        if args.data not in DEFAULT_REFERENCE:
            raise UserError(f"--data {args.data} has no default reference; give one with "
                            f"--reference, e.g. --reference epochs=4,resolution=96 (more "
                            f"steps and pixels than the proxy).")
        reference = dataclasses.replace(first, **DEFAULT_REFERENCE[args.data])
    else:
        reference = parse_settings(args.reference, base=first, flag="--reference")
    if reference in proxies.values():
        raise UserError("--reference equals --proxy (a --proxy setting); give the reference more "
                        "epochs, data, width or resolution, e.g. --reference epochs=12,width=0.5.")
    return proxies, reference


def plan_options(args: argparse.Namespace) -> dict[str, Any]:
    """Options for build_plan: without --budget, the space's dearest ramp is the budget (so
    every ramp is feasible)."""
    from search_spaces import Budget, load_space

    budget: Any = args.budget
    if budget is None:
        img_size = budget_resolution(args.budget_resolution)
        space = load_space(args.space, base=args.base)
        budget = Budget(space.max_flops(img_size), img_size)
    study = args.study or default_study_name(args)
    return {"budget": budget, "budget_resolution": args.budget_resolution, "base": args.base,
            "space": args.space, "data": args.data, "trials": 0, "sampler": "fixed",
            "study": study, "storage": None, "results": str(args.results),
            "scheduler": "none", "seed": args.seed, "objective": args.objective,
            **ray_options(args)}


def measured_data(args: argparse.Namespace) -> str | None:
    """With --data auto, the data an existing study was measured on (a study keeps its data
    whatever this machine has prepared since); None otherwise."""
    if args.data != AUTO:
        return None
    run_file = args.results / (args.study or default_study_name(args)) / study_lib.RUN_FILE
    if not run_file.is_file():
        return None
    return study_lib.read_run_file(run_file).get("settings", {}).get("data")


def default_study_name(args: argparse.Namespace) -> str:
    base = Path(args.base).stem.removeprefix("iformer_")
    budget = "" if args.budget is None else "-" + args.budget.replace(" ", "")
    return f"fidelity-{base}-{Path(args.space).stem}{budget}"


def open_study(plan: Any, reference: Any, proxies: dict[str, Any], create: bool) -> Any:
    """The fidelity study: created (if ``create``), or reopened if it measures the same
    settings. A proxy may be added to a study that has the others (the same ramps then get
    one more setting); one stored under the same name with other settings is refused."""
    import optuna

    location = plan.location
    file = study_lib.storage_file(location.storage_url)
    if not create and file is not None and not file.is_file():
        raise_no_measurement(location)
    storage = study_lib.open_storage(location.storage_url)
    exists = location.name in {s.study_name for s in storage.get_all_studies()}
    if not create and not exists:
        raise_no_measurement(location)
    study = study_lib.create_or_check_study(location, plan.settings,
                                            optuna.samplers.RandomSampler(seed=0), resume=exists)
    stored = study.user_attrs.get(StudyAttr.FIDELITY, {})
    if exists and stored.get("reference") != reference.to_dict():
        differences = study_lib.settings_differences(stored.get("reference") or {},
                                                     reference.to_dict())
        raise UserError(f"study {location.name!r} already measured another reference setting "
                        f"({'; '.join(differences)}); use the same --reference, or a new study "
                        f"with --study NEW_NAME.")
    known = dict(stored.get("proxies") or {"proxy": plan.proxy.to_dict()})
    for name, settings in proxies.items():
        if name in known and known[name] != settings.to_dict():
            differences = study_lib.settings_differences(known[name], settings.to_dict())
            raise UserError(f"study {location.name!r} measured another {name} setting "
                            f"({'; '.join(differences)}); keep the --proxy settings in the "
                            f"same order, or use a new study with --study NEW_NAME.")
        known[name] = settings.to_dict()
    if not exists:
        stored = {"reference": reference.to_dict(), "zero_cost": {}}
    study.set_user_attr(StudyAttr.FIDELITY, {**stored, "proxies": known})
    study_lib.write_run_file(location, plan.settings, trials=0)
    return study


def raise_no_measurement(location: Any) -> None:
    """--no-train on a study that was never measured: nothing to print, and nothing is
    created (an empty study would become the latest under --results)."""
    known = sorted(p.parent.name for p in location.results_dir.glob("*/run.json"))
    raise UserError(f"no study {location.name!r} under {location.results_dir}/ "
                    f"(known: {', '.join(known) or 'none'}); --no-train prints what a study "
                    f"holds, so pass the --study and --results it was measured under, or "
                    f"drop --no-train to measure it.")


# ---------------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    import optuna

    from search_spaces import Budget

    from ..fidelity.ramps import choose_ramps, study_ramps
    from ..fidelity.settings import describe_settings
    from ..study.plan import build_plan

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_arguments(args)
    args.data, data_note = choose_source(measured_data(args) or args.data)
    if data_note:
        print(f"data       {args.data}  ({data_note})")
    proxies, reference = resolve_settings(args)
    proxy = proxies["proxy"]
    plan = build_plan(plan_options(args), proxy)
    budget: Budget | None = plan.budget if args.budget is not None else None
    study = open_study(plan, reference, proxies, create=args.train)
    # The ramps a study measures are fixed once drawn: a later run (another --seed, a
    # larger --samples) keeps them and only adds ramps.
    ramps = choose_ramps(plan.space, args.samples, budget, seed=args.seed,
                         known=study_ramps(study))
    if args.train:
        store_ramps(study, ramps)
    if args.train:
        study_lib.lock_study(plan.location)  # a second driver on this study is refused
    print(f"study      {plan.location.name}   ({plan.location.storage_url})")
    print(f"ramps      {len(ramps)} of {plan.space.base_name} ({', '.join(ramps)}), "
          f"{args.seeds} seeds each" + (f", sampled within {budget}" if budget else ""))
    reference_seeds = args.seeds if args.reference_seeds is None else args.reference_seeds
    for name, settings in proxies.items():
        print(f"{name:<10} {describe_settings(settings)}")
    print(f"reference  {describe_settings(reference)}, {reference_seeds} seeds")
    supernets = supernet_settings(args)
    for name, settings in supernets.items():
        print(f"{name:<10} {settings.strategy} sampling, {settings.epochs} epochs"
              + (", in-place distillation" if settings.distillation else "")
              + f", scored on {settings.score_samples or 'all'} validation images")
    with contextlib.ExitStack() as ray_up:  # one Ray session for every setting that trains
        # The reference first: it is the dearest part, and no proxy under test changes it.
        # Then the supernets: one training per seed measures every ramp.
        for name, settings in (("reference", reference), *proxies.items()):
            seeds = reference_seeds if name == "reference" else args.seeds
            if name == "proxy" and args.train and train_supernets(
                    study, plan, args, ramps, supernets, ray_up) == 130:
                return 130
            if args.train and train_setting(study, plan, args, ramps, (name, settings, seeds),
                                            ray_up) == 130:
                return 130
    if args.zero_cost:
        store_zero_cost(study, plan, args, ramps, proxy)
    return report(study, plan)


def store_ramps(study: Any, ramps: dict[str, list[int]]) -> None:
    """Record the measured ramps by label, so the study keeps its ramps however it is run
    again."""
    stored = dict(study.user_attrs.get(StudyAttr.FIDELITY, {}))
    stored["ramps"] = {**stored.get("ramps", {}), **ramps}
    study.set_user_attr(StudyAttr.FIDELITY, stored)


def train_setting(study: Any, plan: Any, args: argparse.Namespace, ramps: dict[str, list[int]],
                  setting: tuple[str, Any, int], ray_up: contextlib.ExitStack) -> int:
    """Train the (ramp, seed) pairs of one ``setting`` (name, settings, seeds) that have no
    ended run yet; Ray is started into ``ray_up`` by the first setting that trains and kept
    up for the others."""
    from ..fidelity.ramps import fidelity_jobs

    name, settings, seeds = setting
    study_lib.recover_interrupted(study)
    jobs = fidelity_jobs(study, ramps, name, seeds, args.cpus_per_trial)
    print(f"\n{name}: {len(ramps) * seeds - len(jobs)} of {len(ramps) * seeds} "
          f"trainings already in the study, {len(jobs)} to run", flush=True)
    if not jobs:
        return 0
    from ..cluster.jobs import train_jobs  # imports Ray
    from ..training.proxy import load_data_for

    data = load_data_for(args.data, settings)
    setting_plan = dataclasses.replace(plan, proxy=settings)
    outcome = train_jobs(study, setting_plan, jobs, data, ray_up)
    if outcome.interrupted:
        print("interrupted: finished trainings are kept; run the same command again to "
              "complete the measurement.")
        return 130
    return 0


def supernet_settings(args: argparse.Namespace) -> dict[str, Any]:
    """{name: SupernetSettings} of the --supernet flags, in order: supernet, supernet2, ..."""
    from ..fidelity.settings import parse_settings
    from ..fidelity.supernet import supernet_name
    from ..oneshot import SupernetSettings

    return {supernet_name(i): parse_settings(text, flag="--supernet", kind=SupernetSettings)
            for i, text in enumerate(args.supernet or [])}


def train_supernets(study: Any, plan: Any, args: argparse.Namespace,
                    ramps: dict[str, list[int]], supernets: dict[str, Any],
                    ray_up: contextlib.ExitStack) -> int:
    """Train each --supernet setting's supernet per seed (continuing from its checkpoint)
    and record its subnets' scores of every ramp not yet scored."""
    from ..fidelity.supernet import record_supernet_runs, supernet_jobs

    jobs = supernet_jobs(study, ramps, supernets, args.seeds, plan.proxy, plan.space,
                         plan.budget if args.budget is not None else None,
                         plan.location.folder)
    if not supernets:
        return 0
    print(f"\nsupernets: {len(supernets) * args.seeds - len(jobs)} of "
          f"{len(supernets) * args.seeds} (setting, seed) supernets already scored every "
          f"ramp, {len(jobs)} to train or finish", flush=True)
    if not jobs:
        return 0
    from ..cluster.connection import ray_session
    from ..cluster.oneshot import fidelity_supernets
    from ..training.proxy import load_data_for

    ray_up.enter_context(ray_session(plan))
    data = load_data_for(args.data, plan.proxy)
    budget = plan.budget if args.budget is not None else None

    def record(job: Any, scores: Any, train_cpu_s: float) -> None:
        record_supernet_runs(study, plan.space, budget, job, scores, train_cpu_s,
                             plan.objective.key)

    if fidelity_supernets(jobs, plan, data, record):
        print("interrupted: finished supernets are kept (and a supernet's last epoch); run "
              "the same command again to complete the measurement.")
        return 130
    return 0


def store_zero_cost(study: Any, plan: Any, args: argparse.Namespace,
                    ramps: dict[str, list[int]], proxy: Any) -> None:
    """Zero-cost scores of every ramp on its proxy model, mean over the seeds; kept in the
    study so the report can show them. Only ramps not scored yet are scored."""
    from ..training.proxy import load_data_for
    from ..training.zero_cost import ZERO_COST_SCORES, zero_cost_scores

    stored = dict(study.user_attrs.get(StudyAttr.FIDELITY, {}))
    scores = dict(stored.get("zero_cost", {}))
    missing = {label: ramp for label, ramp in ramps.items()
               if scores.get(label, {}).get("ramp") != ramp
               or scores[label].get("seeds") != args.seeds}
    if not missing:
        return
    print(f"\nzero-cost  scoring {len(missing)} ramp(s) x {args.seeds} seed(s) on the proxy "
          f"model (synflow, NASWOT, grad-norm; kept in the study)", flush=True)
    data = load_data_for(args.data, proxy)
    threads = max(1, int(args.cpus_per_trial))  # a trial's share: others may share the CPUs
    for label, ramp in missing.items():
        config = plan.space.base.with_ramp(ramp)
        per_seed = [zero_cost_scores(config, data, proxy, seed, num_threads=threads)
                    for seed in range(args.seeds)]
        scores[label] = {"ramp": ramp, "seeds": args.seeds,
                         **{name: sum(s[name] for s in per_seed) / len(per_seed)
                            for name in ZERO_COST_SCORES}}
    stored["zero_cost"] = scores
    study.set_user_attr(StudyAttr.FIDELITY, stored)


def report(study: Any, plan: Any) -> int:
    import pandas as pd

    from ..fidelity.tables import (
        FIDELITY_SCORES,
        fidelity_runs,
        fidelity_tables,
        format_tables,
        tabled_runs,
    )

    for name, (have, of) in tabled_runs(fidelity_runs(study))[1].items():
        print(f"{name:<10} {have} of the reference's {of} ramps measured so far: left out of "
              f"the tables until it has them all (the command without --no-train trains "
              f"the rest)")
    tables, summaries, epochs = [], [], []
    for score in FIDELITY_SCORES:
        table, summary, per_epoch = fidelity_tables(study, plan.space.base.depths, score)
        print()
        print(format_tables(table, summary, score))
        tables.append(table.assign(score=score))
        summaries.append(summary)
        epochs.append(per_epoch)
    folder = plan.location.folder
    pd.concat(tables).to_csv(folder / "fidelity.csv", index=False)
    pd.concat(summaries).to_csv(folder / "fidelity_summary.csv", index=False)
    pd.concat(epochs).to_csv(folder / "fidelity_epochs.csv", index=False)
    print(f"\nper ramp       {folder / 'fidelity.csv'} (both scores: column 'score')")
    print(f"summary        {folder / 'fidelity_summary.csv'} (tau per epoch: "
          f"fidelity_epochs.csv)")
    if any(not table.empty for table in tables):
        from ..reporting.report_file import write_report

        print(f"report         {write_report(plan.location)}")
    print(f"study storage  {plan.location.storage_url}")
    return 0
