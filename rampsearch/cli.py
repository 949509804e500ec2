"""`rampsearch` command line: one sub-command per module in ``rampsearch.commands``."""

from __future__ import annotations

import os

# Before torch is imported: OpenMP's default (active) wait policy spins idle threads, which
# slows a multi-threaded trial many times over when another trial shares the cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Ray Tune's own console tables would interleave with our progress lines.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

import argparse  # noqa: E402
import importlib
import pkgutil
import signal
import sys
from collections.abc import Sequence

from iformer import ConfigError

from .errors import UserError


def command_modules() -> list[str]:
    """Every module of ``rampsearch.commands``; each defines ``register(subparsers)``, which
    adds its parser and sets ``handler``."""
    from . import commands
    return sorted(m.name for m in pkgutil.iter_modules(commands.__path__))


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions whose message is meant for the user: printed, never a traceback."""
    types: list[type[BaseException]] = [UserError, ConfigError]
    try:  # the search-space package is optional at this layer
        from search_spaces import SpaceError
        types.append(SpaceError)
    except ImportError:
        pass
    return tuple(types)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rampsearch",
        description="Search the per-block frequency ramp (C_h/C) of the Inception Transformer "
                    "under a FLOPs budget.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in command_modules():
        importlib.import_module(f"rampsearch.commands.{name}").register(subparsers)
    return parser


def interrupt_on_sigterm() -> None:
    """SIGTERM (what cluster schedulers and `timeout` send) is handled as Ctrl-C is: finished
    trials kept, running ones marked interrupted, the resume command printed. The SIGINT
    handler in force when it arrives runs: Ray Tune's (which ends the experiment) during a
    search, else Python's (KeyboardInterrupt)."""
    def forward(signum: int, frame: object) -> None:
        handler = signal.getsignal(signal.SIGINT)
        if not callable(handler):
            raise KeyboardInterrupt
        handler(signal.SIGINT, frame)

    signal.signal(signal.SIGTERM, forward)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    interrupt_on_sigterm()
    try:
        return int(args.handler(args) or 0)
    except user_error_types() as exc:
        print(f"rampsearch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rampsearch: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
