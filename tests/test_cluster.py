"""Defaults for a cluster: the CPUs a process may use (msgp.cpus) behind every --workers and --jobs
default, and progress as plain lines where the output is a log rather than a terminal
(msgp.progress). Sharding by cost is tested in test_shards.py."""
from __future__ import annotations

import io as text_io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from msgp import io
from msgp.cpus import available_cpus
from msgp.progress import INTERVAL_S, STEP, LineProgress, progress_bar

MASK = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@pytest.mark.parametrize("value, expected", [(None, MASK), ("1", 1), (str(MASK + 7), MASK), ("0", MASK),
                                             ("two", MASK), ("-1", MASK), (" 1 ", 1)])
def test_slurm_cpus_per_task_counts_when_smaller_than_the_mask(value, expected):
    environ = {} if value is None else {"SLURM_CPUS_PER_TASK": value}
    assert available_cpus(environ) == expected


def test_the_environment_of_this_process_is_read_by_default(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert available_cpus() == 1
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    assert available_cpus() == MASK


def test_msgp_and_the_cli_count_cpus_in_one_place():
    """Every CPU count of msgp and cli.py is msgp.cpus.available_cpus; os.cpu_count appears nowhere else."""
    root = Path(cli.__file__).parent
    counting = sorted(str(path.relative_to(root)) for path in [*root.glob("msgp/**/*.py"), root / "cli.py"]
                      if "cpu_count(" in path.read_text())
    assert counting == ["msgp/cpus.py"]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or MASK < 2, reason="needs an affinity mask of 2+ CPUs")
def test_the_affinity_mask_counts_not_the_machine():
    """A process pinned to one CPU (as taskset or a cgroup cpuset pins it) may use one."""
    script = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
              "from msgp.cpus import available_cpus; print(available_cpus({}), os.cpu_count())")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    mine, machine = map(int, done.stdout.split())
    assert (mine, machine) == (1, os.cpu_count())


def test_generate_defaults_its_workers_to_the_cpus(tmp_path, monkeypatch):
    write, seen = io.write, []

    def spy(*args, **kwargs):
        seen.append(kwargs["workers"])
        return write(*args, **kwargs)

    monkeypatch.setattr(io, "write", spy)
    result = CliRunner().invoke(cli.main, ["generate", "--scales", "1", "--size", "32", "--n", "4", "-o",
                                           str(tmp_path / "g.h5")], env={"SLURM_CPUS_PER_TASK": "1"})
    assert result.exit_code == 0, result.output
    assert seen == [1]


@pytest.mark.parametrize("plan", ["smoke", "f1"])
def test_experiment_defaults_its_jobs_to_the_cpus(plan, tmp_path, monkeypatch):
    from backdrop import experiment, nondecomposable

    seen = []

    def spy(*args, jobs, **kwargs):
        seen.append(jobs)
        return {}

    monkeypatch.setattr(experiment, "run_experiment", spy)
    monkeypatch.setattr(nondecomposable, "run_plan", spy)
    result = CliRunner().invoke(cli.main, ["experiment", "--plan", plan, "--out", str(tmp_path)],
                                env={"SLURM_CPUS_PER_TASK": "1"})
    assert result.exit_code == 0, result.output
    assert seen == [1]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_line_every_step_of_the_total():
    out, clock = text_io.StringIO(), Clock()
    bar = LineProgress(total=1000, unit="sample", desc="generate", file=out, clock=clock)
    for _ in range(1000):
        clock.now += 0.02
        bar.update()
    lines = out.getvalue().splitlines()
    counts = [int(re.match(r"generate: (\d+)/1000 samples", line).group(1)) for line in lines]
    assert counts == list(range(int(STEP * 1000), 1001, int(STEP * 1000)))
    assert lines[0] == "generate: 50/1000 samples (5%), 1 s, about 19 s left"
    assert lines[-1] == "generate: 1000/1000 samples (100%), 20 s"


def test_a_line_every_interval_when_the_count_grows_slowly():
    """A long training (ten steps per interval): a line whenever the interval has passed, and the
    postfix of the last step in it."""
    out, clock = text_io.StringIO(), Clock()
    bar = LineProgress(unit="step", desc="augment", file=out, clock=clock)
    bar.reset(total=1000, initial=0)
    for step in range(30):
        clock.now += INTERVAL_S / 10
        bar.set_postfix({"loss": f"{step:.3f}"}, refresh=False)
        bar.update()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0] == "augment: 10/1000 steps (1%), 2 min, about 3 h 18 min left, loss 9.000"


def test_a_resumed_count_takes_its_rate_from_this_process():
    out, clock = text_io.StringIO(), Clock()
    bar = LineProgress(total=100, initial=90, unit="run", file=out, clock=clock)
    clock.now = 60.0
    bar.update(5)
    assert out.getvalue() == "95/100 runs (95%), 60 s, about 60 s left\n"


def test_a_disabled_bar_prints_nothing():
    out = text_io.StringIO()
    bar = progress_bar(total=10, file=out, disable=True)
    for _ in range(10):
        bar.update()
    assert out.getvalue() == ""


def test_a_log_gets_plain_lines(tmp_path):
    """`msgp generate` with stderr captured, as in a SLURM log: no carriage returns, one line per
    step of the total, the last at 100%; stdout keeps the summary."""
    done = subprocess.run([sys.executable, "-m", "cli", "generate", "--scales", "1", "--size", "32", "--n", "200",
                           "--batch-size", "4", "--workers", "1", "-o", str(tmp_path / "g.h5")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr
    lines = done.stderr.splitlines()
    counts = [int(re.fullmatch(r"generate: (\d+)/200 samples \(\d+%\), \d+ s(, about \d+ s left)?", line).group(1))
              for line in lines]
    assert counts[-1] == 200 and lines[-1].startswith("generate: 200/200 samples (100%)")
    assert all(b - a >= STEP * 200 for a, b in zip(counts, counts[1:-1]))
    assert done.stdout.startswith("wrote ")
