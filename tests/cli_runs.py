"""Running the real `rampsearch` command in a fresh process, as a user would (shared by the
end-to-end tests): this checkout's code first on the path, never an existing Ray cluster."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import optuna

from rampsearch.study import storage as study_lib

ROOT = str(Path(__file__).resolve().parents[1])


# The token of the test session's Ray cluster (Ray's token authentication, as `ray start`
# uses by default), given to the cluster and to every command that joins it.
CLUSTER_TOKEN = secrets.token_hex(32)


def environment(ray_address: str | None = None) -> dict[str, str]:
    """This process's environment with this checkout first on the path; RAY_ADDRESS set to
    ``ray_address`` (the session's cluster, with its token), or removed (a local Ray, started
    and stopped by the command)."""
    env = dict(os.environ)
    for name in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(name, None)
    if ray_address:
        env.update(RAY_ADDRESS=ray_address, **cluster_auth())
    env["PYTHONPATH"] = os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])
    return env


def cluster_auth() -> dict[str, str]:
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": CLUSTER_TOKEN}


def rampsearch(*args: str, timeout: float = 900, ray_address: str | None = None
               ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rampsearch", *args], capture_output=True,
                          text=True, timeout=timeout, env=environment(ray_address))


def load(results: Path, name: str) -> optuna.Study:
    return study_lib.load_study(study_lib.find_study(results, name))


def start_rampsearch(folder: Path, *args: str) -> subprocess.Popen:
    """The command started in the background (to be killed or signalled by a test), its
    output in ``folder``/out and ``folder``/err."""
    return subprocess.Popen([sys.executable, "-m", "rampsearch", *args],
                            stdout=(folder / "out").open("w"), stderr=(folder / "err").open("w"),
                            env=environment())
