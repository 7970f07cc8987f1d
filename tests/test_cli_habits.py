"""What a user of other command-line tools expects of msgp's: fixed values as listed choices (from
their registries), help for every option, shell completion, Ctrl-C ending every long command with
exit code 130 and how to go on, `generate --no-oracle`, `oracle --workers` with the same result for
any count, and `train --config` rerunning a run's settings with changes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import cli
from msgp import io, oracle
from msgp.kernels import KERNELS
from msgp.spec import DTYPES, NORMALIZE, DatasetSpec

ROOT = Path(cli.__file__).resolve().parent
TWO_SCALES = DatasetSpec(n=48, length_scales=[[1.5, 3.0], [6.0, 12.0]], amplitudes=[1.0, 1.0], size=32)
QUICK = ["--n-train", "16", "--n-test", "16", "--batch-size", "4", "--width", "4", "--device", "cpu"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("habits") / "two.h5"
    io.write(TWO_SCALES, path, workers=1)
    return path


def test_every_option_of_every_command_has_help():
    for name, command in cli.main.commands.items():
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help and param.help.strip(), f"msgp {name} {param.opts[0]}"


def test_fixed_values_are_choices_from_their_registries():
    from backdrop.experiment import PLANS
    from backdrop.nondecomposable import PLANS as NONDECOMPOSABLE
    from backdrop.training import DEVICES, PRECISIONS

    def choices(command, option):
        param = next(p for p in cli.main.commands[command].params if option in p.opts)
        assert isinstance(param.type, click.Choice), (command, option)
        return tuple(param.type.choices)

    assert choices("generate", "--kernel") == tuple(KERNELS)
    assert choices("generate", "--normalize") == NORMALIZE
    assert choices("generate", "--dtype") == DTYPES
    assert choices("train", "--device") == choices("evaluate", "--device") == DEVICES
    assert choices("train", "--precision") == PRECISIONS
    plans = choices("experiment", "--plan")
    assert plans == (*PLANS, *NONDECOMPOSABLE)
    help_text = next(p for p in cli.main.commands["experiment"].params if p.name == "plan").help
    assert all(f"{plan}:" in help_text or f"{plan}," in help_text for plan in plans)


def test_the_command_line_starts_without_torch():
    """The plan and device registries are read when needed: `msgp info` and every completion of
    another command start without importing torch."""
    done = subprocess.run([sys.executable, "-c", "import sys, cli; print('torch' in sys.modules)"], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("words, expected", [
    ("msgp generate --kernel ", {"se", "matern32", "matern52"}),
    ("msgp experiment --plan p", {"paper128", "paper128-lean", "paper"}),
    ("msgp train --precision ", {"fp32", "tf32", "bf16"}),
])
def test_shell_completion_offers_the_choices(words, expected):
    env = {"_MSGP_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
    result = CliRunner().invoke(cli.main, [], env=env, prog_name="msgp")
    assert result.exit_code == 0, result.output
    offered = {line.split(",", 1)[1] for line in result.output.splitlines()}
    assert offered == expected


def test_shell_completion_script():
    result = CliRunner().invoke(cli.main, [], env={"_MSGP_COMPLETE": "bash_source"}, prog_name="msgp")
    assert result.exit_code == 0 and "complete -o nosort -F _msgp_completion msgp" in result.output


def test_generate_without_the_oracle(tmp_path, monkeypatch):
    calls, score_file = [], oracle.score_file
    monkeypatch.setattr(oracle, "score_file", lambda *args, **kwargs: calls.append(kwargs) or score_file(*args, **kwargs))
    args = ["generate", "--n", "8", "--size", "16", "--lengths", "1.5,3", "--workers", "1"]
    result = CliRunner().invoke(cli.main, [*args, "--no-oracle", "-o", str(tmp_path / "a.h5")])
    assert result.exit_code == 0, result.output
    assert calls == [] and "oracle" not in result.output
    result = CliRunner().invoke(cli.main, [*args, "-o", str(tmp_path / "b.h5")])
    assert result.exit_code == 0, result.output
    assert calls == [{"workers": 1}] and "oracle   joint" in result.output


@pytest.mark.parametrize("crop", [None, 12])
def test_the_oracle_gives_the_same_result_for_any_number_of_workers(data, crop):
    """Bit for bit: every float of the report (accuracies, mean posteriors) is equal."""
    seen = []
    reports = [oracle.score_file(data, (3, 45), crop=crop, batch_size=8, workers=workers,
                               progress=lambda done, total: seen.append((done, total)))
               for workers in (1, 2, 3)]
    assert reports[0] == reports[1] == reports[2]
    total = 42 if crop is None else TWO_SCALES.n_classes
    pieces = 6 if crop is None else TWO_SCALES.n_classes
    # Before the first piece and after each, rising to the total.
    assert seen == [(0, total), *[(min(8 * k, total) if crop is None else k, total) for k in range(1, pieces + 1)]] * 3


def test_oracle_workers_on_the_command_line(data):
    outputs = [CliRunner().invoke(cli.main, ["oracle", str(data), "--json", "--workers", str(w)]) for w in (1, 2)]
    assert [r.exit_code for r in outputs] == [0, 0]
    assert json.loads(outputs[0].stdout) == json.loads(outputs[1].stdout)


def test_train_config_reruns_a_run_with_changes(data, tmp_path):
    from backdrop import training

    first = tmp_path / "first"
    result = CliRunner().invoke(cli.main, ["train", str(data), *QUICK, "--epochs", "1", "--lr", "0.01",
                                           "--no-augment", "--eval-every", "0", "--out", str(first)])
    assert result.exit_code == 0, result.output
    again = tmp_path / "again"
    result = CliRunner().invoke(cli.main, ["train", "--config", str(first / "config.json"), "--width", "8",
                                           "--out", str(again)])
    assert result.exit_code == 0, result.output
    before, after = training.read_config(first), training.read_config(again)
    # The file's settings (lr 0.01, no augmentation: not msgp train's defaults) hold, but for --width.
    assert (after.lr, after.augment, after.width) == (0.01, False, 8)
    assert {**before.to_dict(), "width": 8} == after.to_dict()


def _interrupt(args, ready, cwd, env_extra=None, timeout=120):
    """Run ``msgp ARGS`` in a process group of its own, as a shell runs a foreground job; once
    ``ready(lines)`` holds (its output so far, stdout and stderr together) send the group SIGINT,
    as Ctrl-C does. Returns (exit code, output lines)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    process = subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=cwd, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while not ready(lines):
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)
        code = process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    reader.join(timeout=10)
    return code, [line.rstrip("\n") for line in lines]


def _check_interrupted(code, lines, *fragments):
    assert code == 130, "\n".join(lines)
    assert lines[-1].startswith("interrupted: "), "\n".join(lines)
    assert all(fragment in lines[-1] for fragment in fragments), lines[-1]
    assert not any("Traceback" in line or "Aborted!" in line for line in lines), "\n".join(lines)


@pytest.mark.slow
def test_ctrl_c_in_generate(tmp_path):
    out = tmp_path / "big.h5"
    args = ["generate", "--n", "100000", "--size", "32", "--lengths", "1.5,3", "--dtype", "float16", "--workers", "2",
            "-o", str(out)]
    # After the first progress line the workers run (a signal that lands while a process forks is lost).
    code, lines = _interrupt(args, lambda lines: any(line.startswith("generate: ") for line in lines), tmp_path)
    _check_interrupted(code, lines, str(out), "--resume")
    assert not io.inspect(out)["complete"]


@pytest.mark.slow
def test_ctrl_c_in_train(data, tmp_path):
    out = tmp_path / "run"
    code, lines = _interrupt(["train", str(data), *QUICK, "--epochs", "200", "--out", str(out)],
                             lambda lines: any(line.startswith(f"{out}: ") for line in lines), tmp_path)
    _check_interrupted(code, lines, f"msgp train --out {out} --resume")
    assert (out / "checkpoint.pt").exists()


@pytest.mark.slow
def test_ctrl_c_in_experiment(tmp_path):
    out = tmp_path / "smoke"
    code, lines = _interrupt(["experiment", "--plan", "smoke", "--jobs", "1", "--out", str(out)],
                             lambda lines: any(line.startswith("generating ") for line in lines), tmp_path)
    _check_interrupted(code, lines, str(out), "rerun the same command")


@pytest.mark.slow
def test_ctrl_c_in_oracle(tmp_path):
    path = tmp_path / "wide.h5"
    io.write(DatasetSpec(n=8, length_scales=[[1.5, 3.0], [6.0, 12.0], [20.0, 30.0]], amplitudes=[1.0, 1.0, 1.0],
                         size=64), path, workers=1)
    # Eight classes, a dense 1600-pixel covariance each: a progress line after the first.
    code, lines = _interrupt(["oracle", str(path), "--crop", "40", "--workers", "2"],
                             lambda lines: any(line.startswith("oracle: ") for line in lines), tmp_path)
    _check_interrupted(code, lines, "nothing to resume")
