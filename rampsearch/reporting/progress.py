"""Live progress of a search: one line per finished trial, and a status line that says how
many trials are done, running, failed and stopped, the best so far with its ramp, and an
estimate of the time left."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..attributes import Attr, Role, Status
from ..ranking.leaderboard import compact_ramp
from ..study.objective import Objective


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


@dataclass
class Progress:
    """Receives the searcher's events ("start", "epoch", "end") and prints them. An "end"
    event's info is what was recorded on the trial (``Attr`` keys), and "retrying"."""

    total_jobs: int
    concurrency: int
    depths: Sequence[int]
    epochs: int
    objective: Objective  # what "best so far" means: the study's objective
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    failed: int = 0
    lost: int = 0        # Ray workers that died: not the ramp's failure, retried
    stopped: int = 0
    running: dict[int, float] = field(default_factory=dict)
    trial_seconds: list[float] = field(default_factory=list)
    best: tuple[float, str, list[int]] | None = None

    def __call__(self, event: str, job: Any, info: dict) -> None:
        if event == "start":
            self.running[job.number] = time.monotonic()
        elif event == "epoch":
            return self._status()
        elif event == "end":
            began = self.running.pop(job.number, time.monotonic())
            self.trial_seconds.append(time.monotonic() - began)
            self.done += 1
            status = info.get(Attr.STATUS)
            if status == Status.STOPPED:
                self.stopped += 1
            elif status == Status.WORKER_LOST:
                self.lost += 1
                self.total_jobs += bool(info.get("retrying"))
            elif status != Status.COMPLETED:
                self.failed += 1
            self._line(job, info)
            if not self.stream.isatty():  # logs get the summary after every trial
                print("      " + self.status_text(), file=self.stream, flush=True)
        self._status()

    def time_left(self) -> float | None:
        if not self.trial_seconds:
            return None
        mean = sum(self.trial_seconds) / len(self.trial_seconds)
        remaining = max(0, self.total_jobs - self.done)
        return mean * remaining / max(1, self.concurrency)

    def _line(self, job: Any, info: dict) -> None:
        top1, loss = info.get(Attr.TOP1), info.get(Attr.VAL_LOSS)
        score = (f"loss {loss:6.4f}" if loss is not None else "loss    -  ") + "  " + (
            f"top-1 {top1:6.2f}%" if top1 is not None else "top-1    -  ")
        value = info.get(self.objective.key)
        status = info.get(Attr.STATUS)
        if status == Status.COMPLETED and value is not None and job.role == Role.CANDIDATE:
            if self.best is None or self.objective.better(value, self.best[0]):
                self.best = (value, job.label, list(job.ramp))
        self._clear()
        print(f"[{self.done:>3}/{self.total_jobs}] {job.label:<22} {score}  "
              f"{status or '?':<9} ep {info.get(Attr.EPOCHS_REACHED, 0):>2}/{self.epochs}  "
              f"{compact_ramp(job.ramp, self.depths)}"
              + (f"  ({info.get(Attr.END_REASON)})" if status != Status.COMPLETED else "")
              + ("; trained again" if info.get("retrying") else ""),
              file=self.stream, flush=True)

    def status_text(self) -> str:
        left = self.time_left()
        best = (f"best {self.objective.format(self.best[0])} {self.objective.key} ({self.best[1]}: "
                f"{compact_ramp(self.best[2], self.depths)})" if self.best else "best -")
        return (f"done {self.done}/{self.total_jobs}  running {len(self.running)}  "
                f"failed {self.failed}  stopped {self.stopped}"
                + (f"  worker lost {self.lost}" if self.lost else "") + f"  {best}  elapsed "
                f"{format_duration(time.monotonic() - self.started)}  left "
                f"{format_duration(left) if left is not None else '?'}")

    def _status(self) -> None:
        if self.stream.isatty():
            self.stream.write("\r\033[K" + self.status_text()[:200])
            self.stream.flush()

    def _clear(self) -> None:
        if self.stream.isatty():
            self.stream.write("\r\033[K")

    def finish(self) -> None:
        self._clear()
        print(self.status_text(), file=self.stream, flush=True)
