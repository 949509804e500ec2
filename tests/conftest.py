"""Shared fixtures: the reference data measured on the released iFormer code, and a Ray
cluster started once for the session, as a user's existing cluster."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_runs import cluster_auth, environment

from rampsearch.data.cache import CACHE_ENV

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE_DIR = SHARED_DIR / "reference"
IMAGENETTE_ARCHIVE = SHARED_DIR / "data" / "imagenette2-160.tgz"


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A cache folder of the test session's own (every command it starts inherits it), so
    what this machine prepared before (Imagenette, which `--data auto` would pick) does not
    change what the tests train on; a test that needs Imagenette prepares it here."""
    folder = tmp_path_factory.mktemp("cache")
    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(folder)
    yield folder
    if before is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = before


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Folder of the reference data (laid beside the checkout); tests needing it skip
    with a clear reason where it is absent."""
    if not REFERENCE_DIR.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE_DIR}")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """The address of a real Ray cluster (`ray start --head`, this machine's CPUs) that the
    commands of several tests reach through RAY_ADDRESS, as they would reach a user's
    cluster; it spares each of them starting a Ray of its own. Its workers import this
    checkout (PYTHONPATH); it asks for a token, as `ray start` does by default
    (cli_runs.cluster_auth). Ended with its whole process group at the end of the session."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ray = Path(sys.executable).with_name("ray")
    head = subprocess.Popen(
        [str(ray), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
         f"--num-cpus={os.cpu_count() or 1}", "--num-gpus=0", "--include-dashboard=false",
         "--disable-usage-stats", "--block"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**environment(), **cluster_auth(), "OMP_WAIT_POLICY": "PASSIVE"},
        start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        wait_for_port(port, head)
        yield address
    finally:
        os.killpg(head.pid, signal.SIGKILL)  # the head and every process it started
        head.wait(timeout=60)


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "`ray start --head` ended by itself"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("the Ray head did not open its port in time")
