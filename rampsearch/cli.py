"""`rampsearch` command line: the table of commands, each a module of ``rampsearch.commands``.

Every command module holds its ``HELP`` line, its ``DESCRIPTION``, optionally a ``FORMATTER``,
``add_arguments(parser)`` and ``run(args)``, which parses, calls the library and prints.

A command may list layers of defaults (`run`: its --config file, then a resumed study's stored
settings); :func:`parse_args` sets them on the command's parser and parses again, so the
command line wins, then each layer in turn, then the built-in defaults.
"""

from __future__ import annotations

import os

# Before torch is imported: OpenMP's default (active) wait policy spins idle threads, which
# slows a multi-threaded trial many times over when another trial shares the cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Ray Tune's own console tables would interleave with our progress lines.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

import argparse  # noqa: E402
import signal
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from .commands import (
    dashboard,
    data,
    export,
    fidelity,
    flops,
    rank,
    report,
    run,
    spaces,
    train,
)
from .errors import StorageFault, UserError, storage_error_types, user_error_types
from .training.fields import KIND_NAMES

# `rampsearch COMMAND`: the module that parses, runs and prints it.
COMMANDS: dict[str, ModuleType] = {
    "dashboard": dashboard,
    "data": data,
    "export": export,
    "fidelity": fidelity,
    "flops": flops,
    "rank": rank,
    "report": report,
    "run": run,
    "spaces": spaces,
    "train": train,
}


def build_parser() -> argparse.ArgumentParser:
    return build_parsers()[0]


def build_parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The `rampsearch` parser and each command's parser by name."""
    parser = argparse.ArgumentParser(
        prog="rampsearch",
        description="Search the per-block frequency ramp (C_h/C) of the Inception Transformer "
                    "under a FLOPs budget.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        parser_of = subparsers.add_parser(
            name, help=command.HELP, description=command.DESCRIPTION,
            formatter_class=getattr(command, "FORMATTER", argparse.HelpFormatter))
        command.add_arguments(parser_of)
        parser_of.set_defaults(handler=command.run)
    return parser, subparsers.choices


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, over the layers of defaults its command lists, as timm's train.py
    layers its --config. A command's ``default_layers`` are functions, highest first, from the
    options parsed so far to option values (None: not given); each layer becomes the command
    parser's defaults, under the layers before it, and the command line is parsed again, so a
    flag always wins, by argparse itself. A layer listed in ``typed_layers`` (a stored
    study's settings) holds values already typed, a Budget or an Objective, and is not
    written out as text to be parsed again."""
    parser, commands = build_parsers()
    args = parser.parse_args(argv)
    command = commands[args.command]
    layered: dict[str, Any] = {}
    for layer in getattr(args, "default_layers", ()):
        given = {key: value for key, value in layer(args).items() if value is not None}
        if layer not in getattr(args, "typed_layers", ()):
            given = typed(command, given)
        layered = {**given, **layered}
        command.set_defaults(**layered)
        args = parser.parse_args(argv)
    return args


def typed(parser: argparse.ArgumentParser, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (from a --config file or a stored study) as the command line would give
    them, or a UserError in one line: argparse converts and checks a default neither by its
    ``choices`` nor, failing, without its usage text."""
    # argparse lists its options in _actions only; its own set_defaults reads them there.
    # nargs None: an option that takes one value (not a switch such as --resume).
    options = {action.dest: action for action in parser._actions
               if action.option_strings and action.nargs is None}
    return {key: option_value(options[key], value) if key in options else value
            for key, value in values.items()}


def option_value(action: argparse.Action, value: Any) -> Any:
    """One value of a file as the option's own: written out as on the command line, then
    converted by the option's ``type`` and checked against its ``choices``."""
    flag = action.option_strings[-1]
    kind = action.type or str
    if isinstance(value, float) and value.is_integer() and kind is int:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        example = "" if action.default is None else f" (e.g. {action.default})"
        raise UserError(f"{flag} must be one value written as on the command line{example}, "
                        f"got {value!r}.")
    try:
        result = kind(str(value))
    except (TypeError, ValueError, argparse.ArgumentTypeError):
        raise UserError(f"{flag} must be {KIND_NAMES.get(kind, 'a valid value')}, got "
                        f"{value!r}.") from None
    if action.choices is not None and result not in action.choices:
        raise UserError(f"{flag} must be one of {', '.join(map(str, action.choices))}, got "
                        f"{value!r}.")
    return result


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
    interrupt_on_sigterm()
    try:
        args = parse_args(argv)
        return int(args.handler(args) or 0)
    except user_error_types() as exc:
        print(f"rampsearch: error: {exc}", file=sys.stderr)
        return 2
    except StorageFault as exc:
        print(f"rampsearch: error: {exc}", file=sys.stderr)
        return 1
    except storage_error_types() as exc:  # outside a run, where no URL is at hand
        print(f"rampsearch: error: {StorageFault(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rampsearch: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
