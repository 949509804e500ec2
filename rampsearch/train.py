"""`python -m rampsearch.train CONFIG --data DIR`: the `rampsearch train` command as a module
of its own, for torchrun (`torchrun --nproc_per_node N -m rampsearch.train ...`), which
starts one such process per GPU."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .commands import train as train_command
from .errors import user_error_types


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rampsearch.train",
        description="Train an exported iFormer with the paper's ImageNet recipe (one process, "
                    "or one of `torchrun --nproc_per_node N -m rampsearch.train ...`).")
    train_command.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return train_command.run(args)
    except user_error_types() as exc:
        print(f"rampsearch: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
