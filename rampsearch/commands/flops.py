"""`rampsearch flops`: analytic FLOPs, parameters and C_h/C per block of one ramp."""

from __future__ import annotations

import argparse
import json

import iformer
from iformer import ConfigError

from ..errors import UserError

HELP = "FLOPs, params and C_h/C per block of a ramp"
DESCRIPTION = ("FLOPs (one multiply-add = one flop, as in the paper), parameters and the "
               "per-block split C_h/C of an iFormer, computed by formula.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", default="iformer_small",
                        help="preset (iformer_small/base/large) or a model YAML/JSON file")
    parser.add_argument("--attention-heads", metavar="A,A,...",
                        help="the ramp: attention heads per block, comma-separated")
    parser.add_argument("--img-size", default=None, metavar="N or HxW",
                        help="input size (default: the model's own, 224 for presets)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def parse_ramp(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part != ""]
    except ValueError:
        raise UserError(f"--attention-heads {text!r} is not a comma-separated list of "
                        f"integers, e.g. 1,1,1,3,3,3,...") from None


def run(args: argparse.Namespace) -> int:
    config = iformer.load_config(args.base)
    if args.attention_heads is not None:
        try:
            config = config.with_ramp(parse_ramp(args.attention_heads))
        except ConfigError as exc:
            raise UserError(f"--attention-heads: {exc}") from None
    img_size = (iformer.parse_image_size(args.img_size) if args.img_size is not None
                else config.input_size)
    breakdown = iformer.flops_breakdown(config, img_size)
    params = iformer.count_params(config)
    blocks = config.blocks()
    if args.json:
        print(json.dumps({
            "config": config.to_dict(), "img_size": list(img_size),
            "flops": breakdown.total, "params": params,
            "blocks": [{"index": s.index, "stage": s.stage, "attention_heads": s.attention_heads,
                        "num_heads": s.num_heads, "high_ratio": s.high_ratio,
                        "flops": f} for s, f in zip(blocks, breakdown.blocks)],
        }, indent=2))
        return 0
    print(f"input {img_size[0]}x{img_size[1]}   FLOPs {breakdown.total / 1e9:.3f} G "
          f"({breakdown.total:,})   params {params / 1e6:.2f} M ({params:,})")
    print(f"{'block':>5} {'stage':>5} {'heads a/n':>9} {'C_h/C':>6} {'GFLOPs':>7}  ramp")
    for spec, flops in zip(blocks, breakdown.blocks):
        bar = "#" * round(spec.high_ratio * 20)
        print(f"{spec.index:>5} {spec.stage:>5} {spec.attention_heads:>4}/{spec.num_heads:<4} "
              f"{spec.high_ratio:>6.3f} {flops / 1e9:>7.3f}  {bar}")
    return 0
