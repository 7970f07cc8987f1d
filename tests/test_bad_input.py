"""The command line's bad input, in one table: every command, each of its options and arguments
given bad values, answers with one `Error:` line on stderr and exit code 2, no traceback, and
writes nothing (no output file, no run directory, no config.json, nothing rewritten).

Click's own rejections (a value not of the option's type, a name not in a ``click.Choice``, a flag
given a value, a missing argument, an unknown option) are click's to test; one row shows they keep
the promise too. The fixtures are built once: a two-scale 32² file, two shards of a small
dataset, a finished one-epoch run for `msgp evaluate`, and a few broken inputs.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import click
import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import cli
from backdrop import runner, training
from msgp import MSGPError, io
from msgp.spec import DatasetSpec

# Two scales, two candidate lengths each: 4 classes; on 32² the deepest stage is 5.
TWO_SCALES = DatasetSpec(n=64, length_scales=[[1.5, 3.0], [6.0, 12.0]], amplitudes=[1.0, 1.0], size=32)
SMALL = DatasetSpec(n=16, length_scales=[[1.5, 4.0]], amplitudes=[1.0], size=16)
# Quick settings for the cases of `msgp train` whose bad value is elsewhere.
QUICK = "--n-train 16 --n-test 16 --batch-size 4 --epochs 1 --width 4 --device cpu"
# How click begins its own errors, which it prints after two lines of usage.
CLICK = "Invalid value for "


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The inputs the table's commands name, as ``{name}`` placeholders, under one directory."""
    root = tmp_path_factory.mktemp("bad_input")
    good = root / "good.h5"
    io.write(TWO_SCALES, good, workers=1)
    other_seed = root / "other_seed.h5"
    io.write(TWO_SCALES.replace(seed=1, n=32), other_seed, workers=1)
    other_stats = root / "other_stats.h5"
    io.write(TWO_SCALES.replace(amplitudes=[1.0, 2.0], seed=2, n=16), other_stats, workers=1)
    for index in range(2):
        io.write(SMALL, root / f"shard{index}.h5", shard=(index, 2), workers=1)
    io.write(SMALL.replace(seed=5), root / "foreign_shard1.h5", shard=(1, 2), workers=1)
    three = root / "three.h5"  # 128², where a crop can be inside the field and still too big
    io.write(DatasetSpec.default(3, 128, n=96), three, workers=1)
    incomplete = root / "incomplete.h5"
    io.write(DatasetSpec.default(2, 128, n=8), incomplete, workers=1)
    with h5py.File(incomplete, "a") as f:
        f.attrs["complete"] = False
    not_msgp = root / "not_msgp.h5"
    with h5py.File(not_msgp, "w") as f:
        f["x"] = np.zeros(3)
    (root / "damaged.h5").write_bytes(b"not an hdf5 file")
    (root / "notes.txt").write_text("not data\n")
    (root / "picture.png").write_bytes(b"a picture drawn before")
    (root / "typo.json").write_text('{"n": 8, "length_scales": [[1.5, 4.0]], "amplitudes": [1.0], "sise": 16}')
    (root / "no_n.json").write_text('{"length_scales": [[1.5, 4.0]], "amplitudes": [1.0], "size": 16}')
    (root / "not_json.json").write_text("{n: 8")
    (root / "empty").mkdir()
    (root / "damaged_run").mkdir()
    (root / "damaged_run" / "config.json").write_text("{not json")
    run = root / "run"
    training.train(training.TrainConfig(data=str(good), n_train=16, n_test=16, batch_size=8, epochs=1, width=4,
                                        augment=False, device="cpu", eval_every=0), run)
    return {"root": root, "good": good, "other_seed": other_seed, "other_stats": other_stats,
            "shard0": root / "shard0.h5", "shard1": root / "shard1.h5", "foreign": root / "foreign_shard1.h5",
            "three": three, "incomplete": incomplete, "not_msgp": not_msgp,
            "damaged": root / "damaged.h5", "text": root / "notes.txt", "picture": root / "picture.png", "typo": root / "typo.json",
            "no_n": root / "no_n.json", "not_json": root / "not_json.json", "empty": root / "empty",
            "damaged_run": root / "damaged_run", "run": run, "missing": root / "missing.h5",
            "nodir": root / "no" / "such" / "dir" / "out.h5"}


def _cases():
    """(name, command line, a fragment of the one `Error:` line), grouped by command and option;
    ``{name}`` in a command or a fragment is a path of :func:`files`."""
    G = "generate --n 8 --size 16 --lengths 1.5,3 --workers 1 -o {root}/g.h5"
    D = "generate --n 4 -o {root}/d.h5"  # the default three scales
    T = "train {good} " + QUICK + " --out {root}/t"
    plans = ", ".join(map(repr, runner.plans()))
    cases = {
        "generate --scales": [("generate --scales 0 -o {root}/g.h5", "--scales must be between 1 and 5"),
                              ("generate --scales -1 -o {root}/g.h5", "--scales must be between 1 and 5"),
                              ("generate --scales 6 -o {root}/g.h5", "--scales must be between 1 and 5"),
                              ("generate --scales 2 --lengths 1.5,3 -o {root}/g.h5", "disagrees with --lengths")],
        "generate --n": [(G + " --n 0", "n must be a positive integer"),
                         (G + " --n -5", "n must be a positive integer"),
                         # click's own check, which keeps the promise too
                         (G + " --n ten", CLICK + "'--n': 'ten' is not a valid integer")],
        "generate --size": [(G + " --size 0", "size must be an integer of at least 4"),
                            (G + " --size -8", "size must be an integer of at least 4"),
                            (G + " --size 3", "size must be an integer of at least 4"),
                            (D + " --size 64", "use --size 108 or more")],
        "generate --ndim": [(G + " --ndim 0", "ndim"), (G + " --ndim 4", "ndim must be 1, 2 or 3"),
                            (G + " --ndim -1", "ndim")],
        "generate --lengths": [(G.replace("1.5,3", "''"), "--lengths is empty"),
                               (G.replace("1.5,3", "a,b"), "--lengths must look like"),
                               (G.replace("1.5,3", "0,1"), "length scales must be positive, but scale 0 has 0"),
                               (G.replace("1.5,3", "-1,2"), "length scales must be positive, but scale 0 has -1"),
                               (G.replace("1.5,3", "nan,2"), "length scales must be positive, but scale 0 has nan"),
                               (G.replace("1.5,3", "2,2"), "length scales of scale 0 must be increasing, but got 2,2"),
                               (D + " --lengths '0.5,2;6,9'", "below 1 px"),
                               (D + " --lengths '1.5,2;6,90'", "beyond the image"),
                               (D + " --lengths '2,1.5;6,9'", "must be increasing"),
                               (D + " --lengths '1.5,7;6,9'", "not overlap"),
                               (D + " --lengths '1.5,2;6'", "same, non-zero number")],
        "generate --amplitudes": [(G + " --amplitudes x", "--amplitudes must be comma-separated numbers"),
                                  (G + " --amplitudes nan", "amplitudes must be positive, but got nan"),
                                  (G + " --amplitudes -1", "amplitude"),
                                  (G + " --amplitudes 1,2", "got 2 amplitudes for 1 scale"),
                                  (D + " --amplitudes 1,0,2", "amplitudes must be positive")],
        "generate --noise": [(G + " --noise nan", "noise"), (G + " --noise -1", "noise must be a number >= 0, but got -1.0"),
                             (G + " --noise inf", "noise")],
        "generate --seed": [(G + " --seed -1", "seed")],
        "generate --preset": [(G + " --preset no-such-preset", "unknown preset 'no-such-preset'"),
                              (G + " --preset {typo}", "unknown parameters sise"),
                              (G + " --preset {not_json}", "not_json.json"),
                              (G + " --preset {missing}", "missing.h5")],
        "generate -o": [(G.replace("{root}/g.h5", "{text}/g.h5"), "cannot create directory {text}"),
                        ("generate --n 8 --size 16 --lengths 2,3 -o {damaged}/x.h5", "cannot create directory {damaged}"),
                        (G.replace("{root}/g.h5", "{good}"), "already exists"),
                        (G.replace("{root}/g.h5", "{empty}"), "is a directory"),
                        (G.replace("{root}/g.h5", "{text}"), "already exists")],
        "generate --overwrite": [(G + " --overwrite --resume", "contradict"),
                                 (G.replace("{root}/g.h5", "{empty}") + " --overwrite", "is a directory")],
        "generate --batch-size": [(G + " --batch-size 0", "--batch-size must be at least 1"),
                                  (G + " --batch-size -1", "--batch-size must be at least 1")],
        "generate --workers": [(G + " --workers 0", "--workers must be at least 1"),
                               (G + " --workers -2", "--workers must be at least 1")],
        "generate --resume": [(G.replace("{root}/g.h5", "{good}") + " --resume", "good.h5"),
                              (G.replace("{root}/g.h5", "{text}") + " --resume", "notes.txt")],
        "generate --shard": [(G + " --shard 3/2", "--shard 3/2: shards of 2 are numbered 0 to 1"),
                             (G + " --shard a/b", "--shard must look like I/N"),
                             (G + " --shard 0/0", "N must be at least 1"),
                             (G + " --shard 1", "--shard must look like I/N"),
                             (G + " --shard -1/2", "--shard must look like I/N"),
                             (G + " --shard 0/9", "shard")],

        "info PATH": [("info {missing}", "does not exist"), ("info {damaged}", "not an HDF5 file"),
                      ("info {empty}", "empty"), ("info {text}", "notes.txt"),
                      ("info {not_msgp}", "not an msgp file")],
        "info --json": [("info {missing} --json", "does not exist")],

        "preview PATH": [("preview {missing} -o {root}/p.png", "does not exist"),
                         ("preview {damaged} -o {root}/p.png", "not an HDF5 file"),
                         ("preview {empty} -o {root}/p.png", "empty"),
                         ("preview {text} -o {root}/p.png", "notes.txt"),
                         ("preview {not_msgp} -o {root}/g.png", "not an msgp file")],
        "preview -o": [("preview {good} -o {root}/grid.txt", "grid.txt"),
                       ("preview {good} -o {root}/no/such/dir/p.png", "does not exist"),
                       ("preview {good} -o {picture}", "already exists"),
                       ("preview {good} -o {empty}", "is a directory"),
                       ("preview {good} -o {root}/grid", "grid")],
        "preview --per-class": [("preview {good} --per-class 0 -o {root}/p.png", "--per-class must be at least 1"),
                                ("preview {good} --per-class -1 -o {root}/p.png", "--per-class must be at least 1")],
        "preview --overwrite": [("preview {good} --overwrite -o {empty}", "is a directory"),
                                ("preview {good} --overwrite -o {good}", "good.h5")],

        "merge SHARDS": [("merge {missing} -o {root}/m.h5", "does not exist"),
                         ("merge {damaged} -o {root}/m.h5", "not an HDF5 file"),
                         ("merge {good} -o {root}/m.h5", "is not a shard"),
                         ("merge {shard0} -o {root}/m.h5", "missing: no shard holds them"),
                         ("merge {shard0} {shard0} {shard1} -o {root}/m.h5", "overlaps"),
                         ("merge {shard0} {foreign} -o {root}/m.h5", "belongs to another dataset")],
        "merge -o": [("merge {shard0} {shard1} -o {nodir}", "does not exist"),
                     ("merge {shard0} {shard1} -o {good}", "already exists"),
                     ("merge {shard0} {shard1} -o {empty}", "is a directory")],
        "merge --overwrite": [("merge {shard0} {shard1} -o {empty} --overwrite", "is a directory"),
                              ("merge {shard0} {shard1} -o {shard0} --overwrite", "shard0.h5")],

        "oracle PATH": [("oracle {missing}", "does not exist"), ("oracle {damaged}", "not an HDF5 file"),
                        ("oracle {empty}", "empty"), ("oracle {text}", "notes.txt is not an HDF5 file"),
                        ("oracle {not_msgp}", "not an msgp file"), ("oracle {incomplete}", "incomplete")],
        "oracle --indices": [("oracle {good} --indices 5", "--indices must look like 'A:B'"),
                             ("oracle {good} --indices a:b", "--indices must look like 'A:B'"),
                             ("oracle {good} --indices 1:2:3", "--indices must look like 'A:B'"),
                             ("oracle {good} --indices 10:5", "--indices 10:5 is not a non-empty range"),
                             ("oracle {good} --indices 0:1000", "--indices 0:1000 is not a non-empty range")],
        "oracle --crop": [("oracle {good} --crop 0", "--crop must be at least 1 pixel"),
                          ("oracle {good} --crop -4", "crop"),
                          ("oracle {good} --crop 1000", "--crop 1000 is larger than the field"),
                          ("oracle {three} --crop 80", "at most 4096 pixels")],
        "oracle --workers": [("oracle {good} --workers 0", "--workers must be at least 1, but got 0"),
                             ("oracle {good} --workers -2", "--workers must be at least 1")],
        "oracle --json": [("oracle {missing} --json", "does not exist"),
                          ("oracle {good} --json --crop 0", "crop")],

        "train DATA": [(T.replace("{good}", "{missing}"), "does not exist"),
                       (T.replace("{good}", "{damaged}"), "not an HDF5 file"),
                       (T.replace("{good}", "{empty}"), "empty"),
                       (T.replace("{good}", "{text}"), "notes.txt"),
                       (T.replace("{good}", "{typo}"), "unknown parameters sise; known: n, length_scales"),
                       (T.replace("{good}", "no-such-preset"), "no-such-preset"),
                       ("train {no_n} --out {root}/t", "lacks n, required dataset parameter")],
        "train --backdrop": [(T + " --no-backdrop --mask-prob 0.5", "--mask-prob"),
                             (T + " --no-backdrop --mask-block 2", "--mask-block")],
        "train --mask-prob": [(T + " --mask-prob 1.5", "mask_prob: backdrop p, the probability that a position's "
                                                       "gradient is masked, has to be in [0, 1), but got 1.5"),
                              (T + " --mask-prob -0.1", "mask_prob"),
                              (T + " --mask-prob half", "--mask-prob must be comma-separated numbers"),
                              (T + " --mask-prob nan", "mask_prob"),
                              (T + " --mask-prob 0.3,0.5,0.95", "3 mask probabilities for 2 scales"),
                              (T + " --backdrop --mask-prob 0.3,0.5,0.95", "3 mask probabilities for 2 scales"),
                              (T + " --mask-prob ''", "--mask-prob must be comma-separated numbers")],
        "train --mask-block": [(T + " --mask-block 0", "mask_block"), (T + " --mask-block -1", "mask_block"),
                               (T + " --mask-block 1.5", "--mask-block must be comma-separated integers"),
                               (T + " --backdrop --mask-block 1,1,2", "3 mask block sizes for 2 scales"),
                               (T + " --mask-block x", "--mask-block must be comma-separated integers")],
        "train --mask-scope": [(T + " --no-backdrop --mask-scope batch", "--no-backdrop turns off")],
        "train --topology": [(T + " --topology series --heads 2,1", "increasing"),
                             (T + " --topology series --heads 2,2", "increasing")],
        "train --whiten": [(T + " --whiten --crop 1", "crop")],
        "train --crop": [(T + " --crop 0", "crop must be an integer of at least 2"),
                         (T + " --crop 1", "crop must be an integer of at least 2"),
                         (T + " --crop 64", "crop must be between 4"),
                         (T + " --crop 2 --heads 1,3", "--crop must be between 8")],
        "train --n-train": [(T + " --n-train 0", "--n-train must be a positive integer, but got 0"), (T + " --n-train -4", "--n-train must be a positive integer"),
                            (T + " --n-train 7", "cannot be balanced over 4 classes"),
                            (T + " --n-train 1000", "1016 is more than the 64 samples")],
        "train --n-test": [(T + " --n-test 0", "--n-test must be a positive integer, but got 0"), (T + " --n-test -4", "--n-test must be a positive integer"),
                           (T + " --n-test 6", "cannot be balanced over 4 classes"),
                           (T + " --n-test 1000", "1016 is more than the 64 samples")],
        "train --test-data": [(T + " --test-data {missing}", "missing.h5 does not exist"),
                              (T + " --test-data {damaged}", "not an HDF5 file"),
                              (T + " --test-data {good}", "training data's seed"),
                              (T + " --test-data {other_stats}", "other parameters")],
        "train --generate": [(T + " --generate 0", "--generate must be a positive number"),
                             (T + " --generate -1", "--generate must be a positive number"),
                             (T + " --generate 8", "more than the 8 samples")],
        "train --epochs": [(T + " --epochs 0", "epochs must be a positive integer, but got 0"),
                           (T + " --epochs -1", "epochs must be a positive integer")],
        "train --batch-size": [(T + " --batch-size 0", "--batch-size must be a positive integer, but got 0"),
                               (T + " --batch-size 1", "--batch-size must be at least 2"),
                               (T + " --batch-size 100", "--batch-size (100) must not exceed --n-train (16)")],
        "train --lr": [(T + " --lr 0", "lr must be a positive number"), (T + " --lr -1", "lr must be a positive number"),
                       (T + " --lr nan", "lr must be a positive number"), (T + " --lr inf", "lr must be a positive")],
        "train --warmup": [(T + " --warmup -0.1", "warmup"), (T + " --warmup 1", "warmup"),
                           (T + " --warmup nan", "warmup")],
        "train --weight-decay": [(T + " --weight-decay -1", "--weight-decay must be a non-negative number"), (T + " --weight-decay nan", "--weight-decay must be a non-negative number"),
                                 (T + " --weight-decay inf", "--weight-decay must be a non-negative number")],
        "train --clip-grad": [(T + " --clip-grad 0", "--clip-grad must be a positive number or None"), (T + " --clip-grad -1", "--clip-grad must be a positive number or None"),
                              (T + " --clip-grad nan", "--clip-grad must be a positive number or None")],
        "train --eval-every": [(T + " --eval-every -1", "--eval-every must be a non-negative integer, but got -1")],
        "train --seed": [(T + " --seed -1", "seed must be a non-negative integer")],
        "train --heads": [(T + " --heads 0,1", "--heads must be a non-empty list of stages 1 to 5"),
                          (T + " --heads 1,2,3", "got 3 head stages for 2 scales"),
                          (T + " --heads 1,9", "stages 1 to 5 (2**stage <= the 32-pixel images), but got (1, 9)"),
                          (T + " --heads a,b", "--heads must be comma-separated"),
                          (T + " --heads 1", "got 1 head stage for 2 scales"),
                          (T + " --heads ''", "--heads must be comma-separated")],
        "train --width": [(T + " --width 0", "width must be a positive integer"),
                          (T + " --width -1", "width must be a positive integer")],
        "train --out": [(T.replace("{root}/t", "{good}"), "good.h5"),
                        (T.replace("{root}/t", "{run}"), "already holds a run"),
                        (T.replace("{root}/t", "{text}"), "notes.txt"),
                        (T.replace("{root}/t", "{damaged_run}"), "already holds a run")],
        "train --resume": [("train {good} --resume", "--resume needs --out"),
                           (T.replace("{root}/t", "{empty}") + " --resume", "not a training run"),
                           (T.replace("{root}/t", "{damaged_run}") + " --resume", "damaged"),
                           ("train {good} --out {run} --resume --width 8", "cannot resume")],
        "train --tensorboard": [(T + " --tensorboard {text}/tb", "notes.txt is a file, not a directory")],
        "train --config": [("train --config {missing}", "--config needs the config.json file of a run"),
                           ("train --config {run}", "--config needs the config.json file of a run"),
                           ("train --config {text}", "--config needs the config.json file of a run"),
                           ("train --config {damaged_run}/config.json --out {root}/t", "damaged"),
                           ("train --config {run}/config.json --out {run} --resume", "contradict"),
                           ("train --config {run}/config.json --width 0 --out {root}/t",
                            "width must be a positive integer")],

        "evaluate RUN_DIR": [("evaluate {missing}", "not a training run"), ("evaluate {empty}", "not a training run"),
                             ("evaluate {damaged_run}", "damaged"), ("evaluate {good}", "not a training run")],
        "evaluate DATA": [("evaluate {run} {missing}", "does not exist"), ("evaluate {run} {damaged}", "not an HDF5"),
                          ("evaluate {run} {other_stats}", "other parameters"),
                          ("evaluate {run} {typo}", "unknown parameters sise")],
        "evaluate --n": [("evaluate {run} {other_seed} --n 0", "n must be a positive integer"),
                         ("evaluate {run} {other_seed} --n -1", "n must be a positive integer"),
                         ("evaluate {run} {other_seed} --n 7", "cannot be balanced over 4 classes"),
                         ("evaluate {run} {other_seed} --n 1000", "more than the 32 samples")],
        "evaluate --json": [("evaluate {missing} --json", "not a training run")],

        # The names click offers are the registry's (cli.RegistryChoice asks backdrop.runner).
        "experiment --plan": [("experiment --plan bogus --out {root}/e", CLICK + f"'--plan': 'bogus' is not one of {plans}.")],
        "experiment --jobs": [("experiment --jobs 0 --out {root}/e", "jobs must be a positive integer"),
                              ("experiment --jobs -1 --out {root}/e", "jobs must be a positive integer")],
        "experiment --out": [("experiment --out {good}", "is not a directory"),
                             ("experiment --out {text} --report", "is not a directory"),
                             ("experiment --out {text} --dry-run", "is not a directory")],
        "experiment --report": [("experiment --report --out {empty}", "holds no finished run"),
                                ("experiment --report --dry-run --out {root}/e", "contradict")],
        "experiment --method": [("experiment --method {root}/nowhere.py:fit --out {root}/e", "does not exist"),
                                ("experiment --method fit --out {root}/e", "must be path/to/file.py:function"),
                                ("experiment --method {text}:fit --out {root}/e", "is not a Python file"),
                                ("experiment --method msgp.spec:choices_of --out {root}/e", "is not marked as a method"),
                                ("experiment --method no_such_module:fit --out {root}/e", "cannot import module"),
                                ("experiment --plan auc --method {root}/nowhere.py:fit --out {root}/e",
                                 "has its own baselines")],
        "experiment --dry-run": [("experiment --dry-run --jobs 0 --out {root}/e", "jobs must be a positive integer")],
        "experiment --shard": [("experiment --shard 2/2 --out {root}/e", "are numbered 0 to 1"),
                               ("experiment --shard 1 --out {root}/e", "must look like I/N"),
                               ("experiment --shard 0/2 --report --out {root}/e", "contradict"),
                               ("experiment --plan f1 --shard 0/2 --out {root}/e", "runs on one machine")],
    }
    return [(f"{option}: {command}", command, fragment)
            for option, group in cases.items() for command, fragment in group]


CASES = _cases()
# Options with no row: their only bad values are click's to reject (an on/off flag given a value,
# a name not in a click.Choice), and the row of `generate --n ten` shows click keeps the promise.
CLICK_ONLY = {"generate --kernel", "generate --normalize", "generate --dtype", "generate --compression",
              "generate --save-components", "generate --oracle", "generate --device", "train --augment",
              "train --device", "train --precision", "evaluate --device"}


def test_the_table_covers_every_option_of_every_command():
    """Every option and argument of every command has a row, but those of CLICK_ONLY, which are
    on/off flags or click.Choice lists and have none."""
    covered = {name.split(":")[0] for name, _, _ in CASES}
    keys = set()
    for name, command in cli.main.commands.items():
        for param in command.params:
            if param.name == "help":
                continue
            label = param.name.upper() if isinstance(param, click.Argument) else param.opts[0]
            key = f"{name} {label}"
            keys.add(key)
            if key in CLICK_ONLY:
                assert key not in covered, f"{key} has rows: take it out of CLICK_ONLY"
                assert param.is_flag or isinstance(param.type, click.Choice), key
            else:
                assert key in covered, key
    assert covered | CLICK_ONLY <= keys  # no row, and no name of CLICK_ONLY, names an option that is gone
    assert len(CASES) >= 200


@pytest.mark.parametrize("name, command, fragment", CASES, ids=[name for name, _, _ in CASES])
def test_bad_value(files, monkeypatch, name, command, fragment):
    """One `Error:` line on stderr, after click's two lines of usage where click itself refused,
    exit code 2, no traceback, and nothing written or rewritten."""
    root = files["root"]
    monkeypatch.chdir(root)  # default outputs (data/msgp.h5, runs/<date>) would land here too
    paths = {k: str(v) for k, v in files.items()}
    args, fragment = shlex.split(command.format(**paths)), fragment.format(**paths)
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output and result.stdout == "", result.output
    *usage, error = result.stderr.strip().splitlines()
    assert error.startswith("Error: ") and fragment in error, result.output
    if fragment.startswith(CLICK):
        assert len(usage) == 3 and usage[0].startswith("Usage: ") and usage[1].endswith(" --help' for help."), result.output
        assert usage[2] == "", result.output
    else:
        assert usage == [], result.output
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before  # nothing new written
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing rewritten


def test_a_bad_value_in_a_process_of_its_own(files):
    """The console script itself: exit status 2, one line on stderr, no traceback, nothing written."""
    out = files["root"] / "subprocess_run"
    env = {**os.environ, "PYTHONPATH": str(Path(cli.__file__).parent)}
    result = subprocess.run([sys.executable, "-m", "cli", "train", str(files["good"]), *QUICK.split(),
                             "--heads", "1,2,3", "--out", str(out)], capture_output=True, text=True, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == ["Error: got 3 head stages for 2 scales; give one per scale, "
                                                  "finest first"]
    assert not out.exists()


@pytest.mark.parametrize("values, message", [
    ({"head_stages": (0, 1)}, "`head_stages` must be a non-empty list of stages 1 to 5"),
    ({"head_stages": (1, 2, 3)}, "got 3 head stages for 2 scales"),
    ({"head_stages": (1, 9)}, r"stages 1 to 5 \(2\*\*stage <= the 32-pixel images\), but got \(1, 9\)"),
    ({"head_stages": (2, 1), "topology": "series"}, "series topology needs increasing `head_stages`"),
    ({"backdrop": True, "mask_block": (1, 1, 2)}, "got 3 mask block sizes for 2 scales"),
    ({"backdrop": True, "mask_prob": (0.3, 0.5, 0.95)}, "got 3 mask probabilities for 2 scales"),
    ({"crop": 2, "head_stages": (1, 3)}, "`crop` must be between 8"),
    ({"n_train": 30}, "n_train=30 cannot be balanced over 4 classes"),
    ({"n_train": None, "n_test": 64}, "n_test=64 is more than the 64 samples can hold beside a class-balanced n_train"),
])
def test_the_trainer_refuses_before_it_writes(files, tmp_path, values, message):
    """`training.train` itself (the API, not only the CLI) checks the settings against the data
    before the run directory exists."""
    config = training.TrainConfig(**{"data": str(files["good"]), "n_train": 16, "n_test": 16, "batch_size": 4,
                                     "epochs": 1, "width": 4, "device": "cpu", **values})
    with pytest.raises(MSGPError, match=message):
        training.train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_mask_settings_count_only_with_backdrop(files):
    """Without backdrop the masks train nothing, so a mask setting per scale of other data is no error."""
    spec = io.read_spec(files["good"])
    training.check_config(training.TrainConfig(data="x.h5", mask_prob=(0.3, 0.5, 0.95), mask_block=(1, 1, 2)), spec)
    with pytest.raises(training.ConfigError, match="got 3 mask probabilities for 2 scales"):
        training.check_config(training.TrainConfig(data="x.h5", backdrop=True, mask_prob=(0.3, 0.5, 0.95)), spec)


def test_series_heads_placed_on_one_stage_are_refused_in_one_line():
    """Two scales whose receptive fields pick the same stage cannot be masked in series."""
    spec = DatasetSpec(n=8, length_scales=[[1.5, 1.6], [1.7, 1.8]], amplitudes=[1.0, 1.0], size=32)
    with pytest.raises(training.ConfigError, match=r"increasing `head_stages` .* but got \(1, 1\)"):
        training.check_config(training.TrainConfig(data="x.h5", topology="series"), spec)
    training.check_config(training.TrainConfig(data="x.h5", topology="series", head_stages=(1, 2)), spec)
