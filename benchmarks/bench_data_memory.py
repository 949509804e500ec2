"""Memory of proxy workers that train on one data set: a private copy each, against the
shared object-store copy (what `DeviceImages` does now), side by side in one run.

    python -m benchmarks.bench_data_memory [--data imagenette] [--resolution 96]
        [--train-samples 9469] [--val-samples 3925] [--workers 2] [--steps 20]

Each worker is a Ray task on a local Ray with the data from the object store (as a search
or fidelity run hands it out); it builds the proxy's batches, trains --steps steps of
iformer_small's proxy, and reads its own /proc/self/status. RssAnon is the worker's private
memory; RssShmem is the object store's pages it maps, counted once per machine however many
workers map them.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

WORKER_FIELDS = ("VmRSS", "RssAnon", "RssFile", "RssShmem")


def memory_status() -> dict[str, float]:
    """This process's memory in MB, from /proc/self/status."""
    found = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in WORKER_FIELDS:
                found[name] = int(value.split()[0]) / 1024
    return found


def train_in_worker(data: object, settings: dict, copy: bool, steps: int) -> dict[str, float]:
    """A few proxy steps on ``data`` (from the object store); ``copy`` first makes a private
    copy of the images, as the workers did before they read the shared one in place."""
    import dataclasses

    import torch

    from iformer.config import preset
    from rampsearch.training.proxy import ProxySettings, proxy_model_config, proxy_plan

    if copy:
        data = dataclasses.replace(data, train_images=np.array(data.train_images),
                                   val_images=np.array(data.val_images))
    torch.set_num_threads(1)
    proxy = ProxySettings(**settings)
    config = proxy_model_config(preset("iformer_small"), proxy, data.num_classes)
    plan = proxy_plan(config, data, proxy, torch.device("cpu"))
    batches = plan.train_batches(0)
    for _ in range(steps):
        images, labels = next(batches)
        loss = plan.train_loss(plan.model(images), labels)
        loss.backward()
        plan.optimizer.step()
        plan.optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
        for images, _ in plan.val_batches():
            plan.model(images)
    return memory_status()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="imagenette")
    parser.add_argument("--resolution", type=int, default=96)
    parser.add_argument("--train-samples", type=int, default=9469)
    parser.add_argument("--val-samples", type=int, default=3925)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)

    import ray

    from rampsearch.data import load_proxy_data
    from rampsearch.errors import UserError

    try:
        data = load_proxy_data(args.data, args.resolution, args.train_samples,
                               args.val_samples)
    except UserError as exc:
        print(f"skipped: {exc}")
        return
    megabytes = (data.train_images.nbytes + data.val_images.nbytes) / 2**20
    settings = {"resolution": args.resolution, "train_samples": args.train_samples,
                "val_samples": args.val_samples}
    print(f"{args.data} at {args.resolution} px: {args.train_samples} + {args.val_samples} "
          f"images, {megabytes:.0f} MB of uint8; {args.workers} workers, {args.steps} steps")
    ray.init(address="local", num_cpus=args.workers, log_to_driver=False,
             include_dashboard=False)
    try:
        ref = ray.put(data)
        task = ray.remote(num_cpus=1)(train_in_worker)
        rows = {}
        for name, copy in (("private copy (before)", True), ("shared, in place (now)", False)):
            started = time.perf_counter()
            per_worker = ray.get([task.remote(ref, settings, copy, args.steps)
                                  for _ in range(args.workers)])
            rows[name] = ({field: float(np.mean([w[field] for w in per_worker]))
                           for field in WORKER_FIELDS}, time.perf_counter() - started)
    finally:
        ray.shutdown()
    print(f"{'worker (mean of ' + str(args.workers) + ')':<26}"
          + "".join(f"{field + ' MB':>13}" for field in WORKER_FIELDS) + f"{'wall s':>9}")
    for name, (memory, wall) in rows.items():
        print(f"{name:<26}" + "".join(f"{memory[f]:>13.0f}" for f in WORKER_FIELDS)
              + f"{wall:>9.1f}")
    before, now = rows["private copy (before)"][0], rows["shared, in place (now)"][0]
    print(f"private memory per worker: {before['RssAnon'] / now['RssAnon']:.2f}x less now "
          f"({before['RssAnon'] - now['RssAnon']:.0f} MB a worker; the data is "
          f"{megabytes:.0f} MB)")


if __name__ == "__main__":
    main()
