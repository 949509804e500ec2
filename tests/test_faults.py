"""Every fault and bad input ends cleanly, through the CLI: one line and exit 2 for a mistake,
nothing written before the inputs are valid and the resources exist, a dead Ray worker
retried apart from the ramp's own failures, SIGTERM handled as Ctrl-C, one driver per study.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from cli_runs import environment, load, rampsearch, start_rampsearch
from optuna.trial import TrialState

from rampsearch.cli import main
from rampsearch.cluster.connection import check_cluster
from rampsearch.errors import StorageFault, UserError
from rampsearch.study import storage as study_lib

BASELINES = {"paper", "equal_split", "reverse_ramp", "all_attention_but_one",
             "one_attention_head"}
TINY_PROXY = ["--data", "synthetic", "--epochs", "2", "--train-samples", "128",
              "--batch-size", "64", "--width", "0.125"]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("rampsearch: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


# ------------------------------------------------------------------- bad input, fast
@pytest.mark.parametrize("argv, message", [
    (["run", "--budget", "4.8G", "--storage", "notaurl"], "neither an Optuna RDB URL"),
    (["run", "--budget", "4.8G", "--seed", "-1"], "--seed -1"),
    (["run", "--budget", "4.8G", "--gpus-per-trial", "nan"], "--gpus-per-trial must be 0"),
    (["run", "--budget", "4.8G", "--cpus-per-trial", "inf"], "--cpus-per-trial must be"),
    (["run", "--budget", "4.8G", "--worker-retries", "-1"], "--worker-retries -1"),
    (["run", "--budget", "4.8G", "--ray-address", "nonsense"], "give HOST:PORT"),
    (["run", "--budget", "4.8G", "--ray-address", "127.0.0.1:{port}"], "nothing answers at"),
    (["dashboard", "--port", "99999"], "--port 99999 is not a TCP port"),
    (["dashboard", "--port", "0"], "--port 0 is not a TCP port"),
    (["rank", "--reeval-top", "3", "--cpus-per-trial", "0"], "--cpus-per-trial must be"),
    (["rank", "--top", "0"], "--top 0"),
    (["fidelity", "--cpus-per-trial", "0"], "--cpus-per-trial must be"),
    (["fidelity", "--max-concurrent", "0"], "--max-concurrent 0"),
    (["fidelity", "--no-train", "--study", "never"], "no study 'never' under"),
])
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys, argv,
                                                  message):
    monkeypatch.chdir(tmp_path)  # a journal file would land here
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    results = tmp_path / "results"
    argv = [a.format(port=closed_port()) for a in argv]
    extra = ["--data", "synthetic"] if argv[0] == "run" else []
    code = main([*argv, *extra, "--results", str(results)]
                if argv[0] != "dashboard" else [*argv, "--results", str(results)])
    assert code == 2
    assert message in one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no results/, no journal file


def test_unwritable_results_folder_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = main(["run", "--budget", "4.8G", "--data", "synthetic", "--results",
                 str(blocker / "results")])
    assert code == 2 and "cannot write results to --results" in one_line_error(capsys)
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_results_under_proc_is_one_line(capsys):
    code = main(["run", "--budget", "4.8G", "--data", "synthetic", "--results",
                 "/proc/forbidden"])
    assert code == 2 and "/proc/forbidden" in one_line_error(capsys)


@pytest.mark.slow
def test_a_cluster_that_wants_a_token_is_named_as_such(ray_cluster, tmp_path):
    # The session's cluster asks for a token (as `ray start` does by default); a command
    # that joins it without one is told how to give it, in one line, and writes nothing.
    done = rampsearch("run", "--budget", "4.8GFLOPs", "--data", "synthetic", "--results",
                      str(tmp_path / "results"), "--ray-address", ray_cluster, timeout=300)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("rampsearch: error: cannot connect to the Ray cluster at")
    assert "RAY_AUTH_MODE=token" in last and "Traceback" not in done.stderr
    assert not (tmp_path / "results").exists()


def test_cluster_check_names_what_the_cluster_has_and_what_to_pass():
    laptop = [{"CPU": 2.0}]
    with pytest.raises(UserError, match=r"largest with 2 CPUs and 0 GPUs.*--cpus-per-trial 2 "
                                        r"or less"):
        check_cluster(64, 0, laptop, "local")
    with pytest.raises(UserError, match="--gpus-per-trial 0 to train on CPUs"):
        check_cluster(1, 1, laptop, "local")
    split = [{"CPU": 32.0}, {"CPU": 4.0, "GPU": 1.0}]  # each fits a node, not both one node
    with pytest.raises(UserError, match="2 node"):
        check_cluster(8, 1, split, "head:6379")
    check_cluster(4, 1, split, "head:6379")  # fits the GPU node
    check_cluster(0.5, 0, laptop, "local")


def test_a_second_driver_is_refused_and_the_lock_ends_with_its_holder(tmp_path):
    location = study_lib.StudyLocation("s", "sqlite:///x", tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from rampsearch.study import storage as s; "
         "s.lock_study(s.StudyLocation('s', 'sqlite:///x', Path(sys.argv[1]))); "
         "print('locked', flush=True); time.sleep(600)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": environment()["PYTHONPATH"]})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=f"another rampsearch driver \\(pid {holder.pid}"):
            study_lib.lock_study(location)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    probe = subprocess.run(  # the kernel released the killed holder's lock
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from rampsearch.study import storage as s; "
         "s.lock_study(s.StudyLocation('s', 'sqlite:///x', Path(sys.argv[1])))", str(tmp_path)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": environment()["PYTHONPATH"]})
    assert probe.returncode == 0, probe.stderr


def test_a_storage_fault_quotes_the_database_and_says_what_ran_only_where_it_ran():
    database = sqlite3.OperationalError("attempt to write a readonly database")
    try:
        try:
            raise database
        except sqlite3.OperationalError as exc:
            raise RuntimeError("invalid data in the commit\nmore") from exc
    except RuntimeError as wrapper:
        outside, during = StorageFault(wrapper), StorageFault(wrapper, "sqlite:///s.db")
    for text in (str(outside), str(during)):
        assert "failed (attempt to write a readonly database)" in text and "\n" not in text
    assert "still running" not in str(outside) and "storage failed" in str(outside)
    assert "still running" in str(during) and "storage sqlite:///s.db failed" in str(during)


# ------------------------------------------------------------ through Ray, slow
@pytest.mark.slow
@pytest.mark.parametrize("flags, message", [
    (["--cpus-per-trial", str(64 * (os.cpu_count() or 1))], "or less"),
    (["--gpus-per-trial", "1000"], "--gpus-per-trial"),
])
def test_a_request_no_node_can_meet_is_refused_before_anything_is_written(tmp_path, flags,
                                                                          message):
    done = rampsearch("run", "--budget", "4.8GFLOPs", "--results", str(tmp_path / "results"),
                      *flags, *TINY_PROXY, timeout=300)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    err = done.stderr.strip().splitlines()
    assert err[-1].startswith("rampsearch: error: no node of the Ray cluster"), err
    assert "the largest with" in err[-1] and message in err[-1]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "results").exists()  # no study to become "the latest"


def running_trials(database: Path) -> list[dict]:
    """RUNNING trials of a study database with their user attributes (the driver writes
    them as it goes; read without Optuna so the driver's writes are never blocked long)."""
    try:
        with sqlite3.connect(database, timeout=30) as connection:
            rows = connection.execute(
                "SELECT t.number, a.key, a.value_json FROM trials t JOIN "
                "trial_user_attributes a ON a.trial_id = t.trial_id "
                "WHERE t.state = 'RUNNING'").fetchall()
    except sqlite3.OperationalError:
        return []  # not created yet
    trials: dict[int, dict] = {}
    for number, key, value in rows:
        trials.setdefault(number, {"number": number})[key] = json.loads(value)
    return list(trials.values())


def trial_workers(driver: int) -> list[int]:
    """Pids of the Ray Tune trial actors of the local Ray instance this driver started (its
    raylet's children), never those of another Ray on the machine."""
    raylets = [pid for pid in _children(driver) if "raylet" in _cmdline(pid)]
    return [pid for raylet in raylets for pid in _children(raylet)
            if "ImplicitFunc" in _cmdline(pid)]


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def kill_worker_of(driver: subprocess.Popen, database: Path, wanted, spared: set[int],
                   timeout: float = 600) -> dict:
    """Wait for a RUNNING trial that ``wanted(attrs)`` accepts, then SIGKILL its Ray worker
    (one trial at a time runs: the only trial actor not killed before). Returns the trial."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert driver.poll() is None, "the search ended before the worker could be killed"
        trials = [t for t in running_trials(database) if wanted(t)]
        workers = [pid for pid in trial_workers(driver.pid) if pid not in spared]
        if trials and workers:
            os.kill(workers[0], signal.SIGKILL)
            spared.add(workers[0])
            return trials[0]
        time.sleep(0.2)
    raise AssertionError("no such trial ran in time")


@contextlib.contextmanager
def background_run(tmp_path: Path, study: str, *flags: str):
    """`rampsearch run` of a tiny study in the background, one trial at a time, killed on
    the way out if still running. Yields the driver, the results folder and the database;
    the driver's output ends up in ``tmp_path``/out and err."""
    results = tmp_path / "results"
    driver = start_rampsearch(tmp_path, "run", "--budget", "4.8GFLOPs", "--results",
                              str(results), "--study", study, "--max-concurrent", "1", *flags,
                              *TINY_PROXY)
    try:
        yield driver, results, results / study / "study.db"
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(timeout=60)


def outputs(tmp_path: Path) -> tuple[str, str]:
    return (tmp_path / "out").read_text(), (tmp_path / "err").read_text()


@pytest.mark.slow
def test_killed_workers_are_retried_and_a_killed_baseline_completes_on_resume(tmp_path):
    killed: set[int] = set()
    with background_run(tmp_path, "killed", "--trials", "1", "--worker-retries", "1",
                        "--reeval-top", "0") as (driver, results, database):
        first = kill_worker_of(driver, database, lambda t: t.get("role") == "baseline", killed)
        baseline = first["baseline"]
        retry = kill_worker_of(driver, database, lambda t: t.get("baseline") == baseline
                               and t.get("attempt") == 2, killed)
        candidate = kill_worker_of(driver, database, lambda t: t.get("role") == "candidate",
                                   killed)
        driver.wait(timeout=900)
    out, err = outputs(tmp_path)
    # The baseline lost its worker twice (--worker-retries 1): the run says so and fails.
    assert driver.returncode == 1, out[-2000:] + err[-2000:]
    assert f"not trained, their Ray worker died more than --worker-retries 1 times: " \
           f"{baseline}" in err
    assert f"rampsearch run --resume --study killed --results {results}" in err
    assert "Traceback" not in out + err
    study = load(results, "killed")
    trials = study.get_trials()
    for number, attempt in ((first["number"], 1), (retry["number"], 2)):
        attrs = trials[number].user_attrs
        assert trials[number].state == TrialState.FAIL
        assert attrs["status"] == "worker_lost" and attrs["failure"] == "infrastructure"
        assert attrs["baseline"] == baseline and attrs["attempt"] == attempt
    ended = {t.user_attrs["baseline"] for t in study_lib.ended_trials(study, "baseline")}
    assert ended == BASELINES - {baseline}  # the lost one is not counted as done
    # The candidate lost its worker once: the same ramp was trained again and completed.
    lost = trials[candidate["number"]]
    assert lost.user_attrs["status"] == "worker_lost"
    again = [t for t in study_lib.ended_trials(study, "candidate")]
    assert len(again) == 1 and again[0].state == TrialState.COMPLETE
    assert again[0].user_attrs["ramp"] == lost.user_attrs["ramp"]
    assert again[0].user_attrs["requeued_from"] == lost.number
    assert again[0].user_attrs["attempt"] == 2

    done = rampsearch("run", "--resume", "--study", "killed", "--results", str(results),
                      "--reeval-top", "0")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    study = load(results, "killed")
    names = [t.user_attrs["baseline"] for t in study_lib.ended_trials(study, "baseline")]
    assert sorted(names) == sorted(BASELINES)  # the killed baseline, once, completed
    rerun = [t for t in study_lib.ended_trials(study, "baseline")
             if t.user_attrs["baseline"] == baseline][0]
    assert rerun.state == TrialState.COMPLETE and rerun.user_attrs["status"] == "completed"
    assert len(study_lib.ended_trials(study, "candidate")) == 1  # nothing else re-run
    frame = pd.read_csv(results / "killed" / "leaderboard.csv")
    lost_rows = frame[frame["failure"] == "infrastructure"]
    assert len(lost_rows) == 3 and set(lost_rows["status"]) == {"worker_lost"}
    assert frame["rank"].max() == len(frame) and list(frame["status"])[-3:] == ["worker_lost"] * 3
    assert "3 of the infrastructure" in done.stdout
    assert "3 of the infrastructure" in (results / "killed" / "report.html").read_text()

    # Ray flags are checked before the finished study is read or anything is rewritten.
    before = (results / "killed" / "leaderboard.csv").stat().st_mtime_ns
    bad = rampsearch("rank", "--results", str(results), "--reeval-top", "3",
                     "--cpus-per-trial", "0")
    assert bad.returncode == 2 and bad.stderr.startswith("rampsearch: error: --cpus-per-trial")
    assert "Traceback" not in bad.stderr
    assert (results / "killed" / "leaderboard.csv").stat().st_mtime_ns == before


@pytest.mark.slow
def test_sigterm_is_handled_as_ctrl_c_and_a_second_driver_is_refused(tmp_path):
    with background_run(tmp_path, "term", "--trials", "2") as (driver, results, database):
        _wait_until(lambda: _count(database, "COMPLETE") >= 1 and running_trials(database),
                    driver)
        second = rampsearch("run", "--resume", "--study", "term", "--results", str(results),
                            timeout=300)
        assert second.returncode == 2, second.stdout[-2000:] + second.stderr[-2000:]
        assert "being trained by another rampsearch driver" in second.stderr.splitlines()[-1]
        assert "Traceback" not in second.stderr
        assert _count(database, "FAIL") == 0  # the first driver's trials left alone
        _wait_until(lambda: running_trials(database), driver)
        running = [t["number"] for t in running_trials(database)]
        driver.send_signal(signal.SIGTERM)
        driver.wait(timeout=300)
    out, err = outputs(tmp_path)
    assert driver.returncode not in (0, None), out[-2000:] + err[-2000:]
    assert f"rampsearch run --resume --study term --results {results}" in err
    assert "Traceback" not in err
    assert (results / "term" / "leaderboard.csv").is_file()
    assert (results / "term" / "report.html").is_file()
    study = load(results, "term")
    trials = study.get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert [t for t in trials if t.state == TrialState.COMPLETE]  # finished ones kept
    for number in running:  # still running when the signal came (or just finished)
        assert (trials[number].user_attrs.get("end_reason") == "interrupted"
                or trials[number].state == TrialState.COMPLETE)
    assert [t for t in trials if t.user_attrs.get("end_reason") == "interrupted"]
    study_lib.lock_study(study_lib.find_study(results, "term"))  # released by its holder


def _count(database: Path, state: str) -> int:
    try:
        with sqlite3.connect(database, timeout=30) as connection:
            (count,) = connection.execute("SELECT COUNT(*) FROM trials WHERE state = ?",
                                          (state,)).fetchone()
        return count
    except sqlite3.OperationalError:
        return 0


def _wait_until(condition, process: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the search ended too early"
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError("timed out waiting for the search")


@pytest.mark.slow
def test_a_study_database_replaced_under_the_driver_ends_in_one_paragraph(tmp_path):
    # The fault as it happens: a checkout, restore or sync puts another study.db file at the
    # path while the driver holds the old one open; SQLite then refuses every write.
    with background_run(tmp_path, "moved", "--trials", "2", "--reeval-top", "0") as (
            driver, results, database):
        _wait_until(lambda: _count(database, "COMPLETE") >= 1 and running_trials(database),
                    driver)
        copy = tmp_path / "copy.db"
        with sqlite3.connect(database, timeout=30) as source, sqlite3.connect(copy) as target:
            source.backup(target)
        kept = _count(copy, "COMPLETE")
        os.replace(copy, database)
        driver.wait(timeout=600)
    out, err = outputs(tmp_path)
    assert driver.returncode == 1, out[-2000:] + err[-2000:]
    assert "Traceback" not in out + err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"rampsearch: error: the study storage sqlite:///{database}"), last
    assert "(attempt to write a readonly database)" in last and "--resume" in last
    # What ended before the file was replaced is in the database now at the path.
    study = load(results, "moved")
    assert len([t for t in study.get_trials() if t.state == TrialState.COMPLETE]) >= kept >= 1
