"""`rampsearch data get|prepare|show`: fetch Imagenette, build a proxy data set from ImageNet,
or describe one."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..data import describe_source, imagenette, prepare_imagefolder

HELP = "prepare or describe proxy training data"
DESCRIPTION = ("Proxy data sources: 'imagenette' (made once by `data get imagenette`), "
               "'fashion-mnist' (Debian's dataset-fashion-mnist), 'synthetic' "
               "(generated), or a directory made by `data prepare`.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    get = actions.add_parser(
        "get", help="download Imagenette and prepare it as proxy data (--data imagenette)",
        description="Download the public imagenette2-160.tgz (10 ImageNet classes, 9,469 "
                    "train / 3,925 val photographs), or take --from a local archive, an "
                    "extracted folder or another URL; check its layout and counts; and "
                    f"prepare it at {' and '.join(map(str, imagenette.RESOLUTIONS))} px under "
                    "the cache directory ($RAMPSEARCH_CACHE, else ~/.cache/rampsearch), where "
                    "--data imagenette finds it. A broken or partial download never becomes "
                    "a data set; resolutions prepared before are kept.")
    get.add_argument("name", choices=[imagenette.NAME], help="the data set to get")
    get.add_argument("--from", dest="source", metavar="PATH_OR_URL",
                     help=f"archive, folder or URL to take it from (default: "
                          f"{imagenette.PUBLIC_URL})")
    get.add_argument("--res", type=resolutions, default=imagenette.RESOLUTIONS,
                     metavar="PX[,PX...]",
                     help=f"resolutions to prepare "
                          f"({','.join(map(str, imagenette.RESOLUTIONS))})")
    get.add_argument("--quiet", action="store_true", help="no progress bars")

    prepare = actions.add_parser(
        "prepare", help="decode a class subset of ImageNet (or any ImageFolder) to .npy",
        description="Pick CLASSES classes evenly spaced over the sorted class folders of "
                    "DIR/train, decode TRAIN-PER-CLASS and VAL-PER-CLASS images of each "
                    "(shorter side to RES, centre crop), and write memory-mappable .npy arrays "
                    "and manifest.json to OUT. Unreadable files are skipped and listed; an "
                    "interrupted prepare resumes when run again with the same options.")
    prepare.add_argument("--imagenet", required=True, type=Path, metavar="DIR",
                         help="ImageFolder root with train/<class>/ and val/<class>/")
    prepare.add_argument("--out", required=True, type=Path, metavar="DIR",
                         help="output directory (created; reused to resume)")
    prepare.add_argument("--classes", type=int, default=100, help="number of classes (100)")
    prepare.add_argument("--train-per-class", type=int, default=260,
                         help="training images per class (260)")
    prepare.add_argument("--val-per-class", type=int, default=50,
                         help="validation images per class (50)")
    prepare.add_argument("--res", type=int, default=64, help="image side in px (64)")
    prepare.add_argument("--seed", type=int, default=0,
                         help="seed of the per-class image choice (0)")
    prepare.add_argument("--workers", type=int, default=None,
                         help="decoding processes (default: one per CPU)")
    prepare.add_argument("--quiet", action="store_true", help="no progress line")

    show = actions.add_parser(
        "show", help="print what a data source holds",
        description="Classes, counts, resolution and provenance of a data source, read from "
                    "its headers or manifest without decoding images.")
    show.add_argument("source",
                      help="imagenette, fashion-mnist, synthetic, or a prepared directory")
    show.add_argument("--json", action="store_true", help="print the manifest summary as JSON")


def run(args: argparse.Namespace) -> int:
    actions = {"get": run_get, "prepare": run_prepare, "show": run_show}
    return actions[args.data_command](args)


def resolutions(text: str) -> tuple[int, ...]:
    try:
        sides = tuple(int(part) for part in text.split(","))
    except ValueError:
        sides = ()
    if not sides or min(sides) < 8:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of image sides in px, e.g. "
                                         f"64,96")
    return sides


def run_get(args: argparse.Namespace) -> int:
    report = imagenette.get_imagenette(args.source, args.res, progress=not args.quiet)
    print(f"imagenette is ready in {report.home}: {report.counts['train']} train + "
          f"{report.counts['val']} val images, prepared at "
          f"{', '.join(f'{side} px' for side in report.resolutions)} "
          f"({report.wall_s:.0f} s); use --data imagenette.")
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    report = prepare_imagefolder(
        args.imagenet, args.out, classes=args.classes, train_per_class=args.train_per_class,
        val_per_class=args.val_per_class, res=args.res, seed=args.seed, workers=args.workers,
        progress=not args.quiet)
    if report.already_complete:
        print(f"{report.out} is already prepared with these options; nothing to do.")
    else:
        print(f"prepared {report.out}: {len(report.classes)} classes, "
              f"{report.counts['train']} train + {report.counts['val']} val images at "
              f"{args.res} px; {report.skipped['train'] + report.skipped['val']} unreadable "
              f"files skipped; {report.shards_reused} shards reused from an earlier run; "
              f"{report.wall_s:.1f} s ({report.images_per_s:.0f} images/s).")
    for split, short in report.short_classes.items():
        print(f"note: {len(short)} class(es) had fewer {split} images than asked: "
              + ", ".join(f"{name} ({count})" for name, count in list(short.items())[:10]))
    return 0


def run_show(args: argparse.Namespace) -> int:
    summary = describe_source(args.source)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    for line in summary_lines(summary):
        print(line)
    return 0


def summary_lines(summary: dict[str, Any]) -> list[str]:
    classes = summary.get("classes", [])
    shown = ", ".join(classes[:10]) + (f", ... ({len(classes)} in all)" if len(classes) > 10
                                       else "")
    lines = [f"source      {summary.get('source')}",
             f"classes     {len(classes)}: {shown}",
             "images      " + ", ".join(f"{split} {count}"
                                        for split, count in summary.get("counts", {}).items()),
             f"resolution  {summary.get('resolution')}"]
    for key in ("directory", "cache", "seed", "skipped", "settings", "created", "generator"):
        if summary.get(key) is not None:
            lines.append(f"{key:<11} {summary[key]}")
    return lines
