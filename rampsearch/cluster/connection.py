"""Ray itself: starting a local instance or reaching a cluster, checking that a trial's
resource request fits a node, and keeping Ray up across several trainings."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Iterator
from typing import Any

import ray

from ..errors import UserError
from ..study.plan import SearchPlan

RAY_CONNECT_TIMEOUT_S = 10.0  # for --ray-address: Ray itself retries an absent head for minutes


def start_ray(plan: SearchPlan) -> bool:
    """Connect to the cluster at plan.ray_address, or start a local Ray instance, and check
    that a trial's resource request fits a node (Ray would wait forever for one that does
    not). Raises UserError, with Ray shut down, if not. Returns whether this call started it
    (False: Ray was already up, and its owner shuts it down)."""
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = dict(include_dashboard=False, logging_level="ERROR",
                                  log_to_driver=False)
    # Ray's driver installs its own fatal-signal handler for SIGTERM; the CLI's (handled as
    # Ctrl-C) is put back after ray.init.
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        if plan.ray_address:
            check_reachable(plan.ray_address, RAY_CONNECT_TIMEOUT_S)
            # Local workers inherit the driver's environment; a cluster's get it this way.
            env = {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
            ray.init(address=plan.ray_address, runtime_env={"env_vars": env}, **kwargs)
        else:
            ray.init(address="local", **kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise UserError(f"cannot connect to the Ray cluster at {plan.ray_address or 'local'}: "
                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}. "
                        + (TOKEN_HINT if asks_for_token(exc) else
                           "Check the address (HOST:PORT of the head, 6379 by default) and "
                           "that `ray start --head` runs there, or drop --ray-address and "
                           "RAY_ADDRESS to start a local Ray.")) from None
    finally:
        if callable(sigterm):
            signal.signal(signal.SIGTERM, sigterm)
    try:
        nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
        check_cluster(plan.cpus_per_trial, plan.gpus_per_trial, nodes,
                      plan.ray_address or "local Ray on this machine")
    except UserError:
        ray.shutdown()
        raise
    return True


# `ray start` turns Ray's token authentication on by default (Ray 2.59 and later); a driver
# joining such a cluster must be told so, or Ray refuses it after retrying for a while.
TOKEN_HINT = ("The cluster asks for its authentication token (on by default for `ray start` "
              "since Ray 2.59): set RAY_AUTH_MODE=token, and the cluster's token in "
              "RAY_AUTH_TOKEN or ~/.ray/auth_token (`ray get-auth-token` prints it on the "
              "head), then run the command again.")


def asks_for_token(exc: BaseException) -> bool:
    """Whether Ray refused a connection for want of the cluster's token (the reason is in
    the exception Ray chained to its ConnectionError)."""
    text = " ".join(str(e) for e in (exc, exc.__cause__, exc.__context__) if e is not None)
    return "token" in text.lower() and "auth" in text.lower()


@contextlib.contextmanager
def ray_session(plan: SearchPlan) -> Iterator[None]:
    """Ray kept up across several ``execute`` calls (a search and its race), so it starts
    once; shut down (a local instance) or disconnected (a cluster) on every exit path."""
    started = start_ray(plan)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def check_reachable(address: str, timeout: float) -> None:
    """Fail within ``timeout`` seconds when nothing answers at a HOST:PORT Ray address (Ray
    itself retries for minutes without a word). ``auto`` is resolved by Ray, quickly."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray-address {address}: give HOST:PORT of the Ray head node (e.g. "
                        f"10.0.0.5:6379), ray://HOST:10001 or auto.")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UserError(f"nothing answers at --ray-address {address} within {timeout:g} s "
                        f"({exc.strerror or exc}). Check that `ray start --head` runs on {host}, "
                        f"that {port} is its port (6379 by default) and open through any "
                        f"firewall, or drop --ray-address and RAY_ADDRESS to start a local "
                        f"Ray.") from None


def check_cluster(cpus_per_trial: float, gpus_per_trial: float,
                  nodes: list[dict[str, float]], where: str) -> None:
    """Refuse a per-trial request that no node of the cluster (``nodes``: the resources of
    each alive node) can meet, saying what the cluster has and what to pass instead."""
    if any(n.get("CPU", 0.0) >= cpus_per_trial and n.get("GPU", 0.0) >= gpus_per_trial
           for n in nodes):
        return
    cpus = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    gpus = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    fixes = []
    if cpus_per_trial > cpus:
        fixes.append(f"--cpus-per-trial {cpus:g} or less")
    if gpus_per_trial > gpus:
        fixes.append("--gpus-per-trial 0 to train on CPUs" if gpus == 0
                     else f"--gpus-per-trial {gpus:g} or less")
    if not fixes:  # each fits some node, but no node has both
        fixes.append("less of one of them")
    raise UserError(f"no node of the Ray cluster ({where}: {len(nodes)} node(s), the largest "
                    f"with {cpus:g} CPUs and {gpus:g} GPUs) can run a trial that asks for "
                    f"{cpus_per_trial:g} CPUs and {gpus_per_trial:g} GPUs, and Ray would wait "
                    f"for one forever; pass {' and '.join(fixes)}, or --ray-address of a "
                    f"cluster that has such a node.")


def cluster_concurrency(plan: SearchPlan) -> int:
    cpus = ray.cluster_resources().get("CPU", 1.0)
    return max(1, int(cpus // plan.cpus_per_trial))
