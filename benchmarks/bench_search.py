"""Orchestration overhead of `rampsearch run`: the study's wall time against the sum of its
trials' training time divided by the parallelism, in one run.

    python -m benchmarks.bench_search            # default proxy on fashion-mnist, 4 candidates
    python -m benchmarks.bench_search --quick    # tiny proxy on synthetic images
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rampsearch.study import storage as study_lib

QUICK = ["--data", "synthetic", "--epochs", "2", "--train-samples", "256", "--batch-size", "64",
         "--width", "0.125"]


def measure(extra: list[str], trials: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "rampsearch", "run", "--budget", "4.8GFLOPs",
                   "--trials", str(trials), "--results", folder, "--study", "bench", *extra]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])
        study = study_lib.load_study(study_lib.find_study(Path(folder), "bench"))
        trained = [t for t in study.get_trials() if t.user_attrs.get("status")]
        train_seconds = sum(float(t.user_attrs.get("wall_s", 0.0)) for t in trained)
        parallel = 2 if "--max-concurrent" not in extra else int(
            extra[extra.index("--max-concurrent") + 1])
        ideal = train_seconds / parallel
        return {"trials": len(trained), "wall_s": wall, "train_s": train_seconds,
                "ideal_s": ideal, "overhead": wall / ideal - 1.0}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--trials", type=int, default=4)
    args = parser.parse_args(argv if argv is not None else [])
    extra = QUICK if args.quick else []
    result = measure(extra, args.trials)
    print(f"{'setting':<10} {'trials':>6} {'wall s':>8} {'sum train s':>11} "
          f"{'train/parallel s':>16} {'overhead':>9}")
    print(f"{'quick' if args.quick else 'default':<10} {result['trials']:>6} "
          f"{result['wall_s']:>8.1f} {result['train_s']:>11.1f} {result['ideal_s']:>16.1f} "
          f"{result['overhead']:>8.1%}")


if __name__ == "__main__":
    main(sys.argv[1:])
