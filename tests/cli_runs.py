"""Running the real `rampsearch` command in a fresh process, as a user would (shared by the
end-to-end tests): this checkout's code first on the path, never an existing Ray cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna

from rampsearch import study as study_lib

ROOT = str(Path(__file__).resolve().parents[1])


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)  # a local Ray, started and stopped by the command
    env["PYTHONPATH"] = os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])
    return env


def rampsearch(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rampsearch", *args], capture_output=True,
                          text=True, timeout=timeout, env=environment())


def load(results: Path, name: str) -> optuna.Study:
    return study_lib.load_study(study_lib.find_study(results, name))


def start_rampsearch(folder: Path, *args: str) -> subprocess.Popen:
    """The command started in the background (to be killed or signalled by a test), its
    output in ``folder``/out and ``folder``/err."""
    return subprocess.Popen([sys.executable, "-m", "rampsearch", *args],
                            stdout=(folder / "out").open("w"), stderr=(folder / "err").open("w"),
                            env=environment())
