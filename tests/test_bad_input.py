"""Every option of every command, given bad values: one `Error:` line, exit code 2, no traceback,
and nothing written (no output file, no run directory, no config.json).

The fixtures are built once: a two-scale 32² file, two shards of a small dataset, a finished
one-epoch run for `msgp evaluate`, and a few broken inputs.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import cli
from backdrop import training
from msgp import MSGPError, io
from msgp.spec import DatasetSpec

# Two scales, two candidate lengths each: 4 classes; on 32² the deepest stage is 5.
TWO_SCALES = DatasetSpec(n=64, length_scales=[[1.5, 3.0], [6.0, 12.0]], amplitudes=[1.0, 1.0], size=32)
SMALL = DatasetSpec(n=16, length_scales=[[1.5, 4.0]], amplitudes=[1.0], size=16)
# Quick settings for the cases of `msgp train` whose bad value is elsewhere.
QUICK = "--n-train 16 --n-test 16 --batch-size 4 --epochs 1 --width 4 --device cpu"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
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
    (root / "damaged.h5").write_bytes(b"not an hdf5 file")
    (root / "notes.txt").write_text("not data\n")
    (root / "picture.png").write_bytes(b"a picture drawn before")
    (root / "typo.json").write_text('{"n": 8, "length_scales": [[1.5, 4.0]], "amplitudes": [1.0], "sise": 16}')
    (root / "not_json.json").write_text("{n: 8")
    (root / "empty").mkdir()
    (root / "damaged_run").mkdir()
    (root / "damaged_run" / "config.json").write_text("{not json")
    run = root / "run"
    training.train(training.TrainConfig(data=str(good), n_train=16, n_test=16, batch_size=8, epochs=1, width=4,
                                        augment=False, device="cpu", eval_every=0), run)
    return {"root": root, "good": good, "other_seed": other_seed, "other_stats": other_stats,
            "shard0": root / "shard0.h5", "shard1": root / "shard1.h5", "foreign": root / "foreign_shard1.h5",
            "damaged": root / "damaged.h5", "text": root / "notes.txt", "picture": root / "picture.png", "typo": root / "typo.json",
            "not_json": root / "not_json.json", "empty": root / "empty", "damaged_run": root / "damaged_run",
            "run": run, "missing": root / "missing.h5", "nodir": root / "no" / "such" / "dir" / "out.h5"}


def _cases():
    """(command line, a fragment of the one `Error:` line), grouped by command and option."""
    G = "generate --n 8 --size 16 --lengths 1.5,3 --workers 1 -o {root}/g.h5"
    T = "train {good} " + QUICK + " --out {root}/t"
    cases = {
        "generate --scales": [("generate --scales 0 -o {root}/g.h5", "--scales must be between 1 and 5"),
                              ("generate --scales -1 -o {root}/g.h5", "--scales must be between 1 and 5"),
                              ("generate --scales 6 -o {root}/g.h5", "--scales must be between 1 and 5"),
                              ("generate --scales three -o {root}/g.h5", "is not a valid integer"),
                              ("generate --scales 2 --lengths 1.5,3 -o {root}/g.h5", "disagrees with --lengths")],
        "generate --n": [(G + " --n 0", "n must be a positive integer"),
                         (G + " --n -5", "n must be a positive integer"),
                         (G + " --n ten", "is not a valid integer"),
                         (G + " --n 1.5", "is not a valid integer")],
        "generate --size": [(G + " --size 0", "size must be an integer of at least 4"),
                            (G + " --size -8", "size must be an integer of at least 4"),
                            (G + " --size 3", "size must be an integer of at least 4"),
                            (G + " --size big", "is not a valid integer")],
        "generate --ndim": [(G + " --ndim 0", "ndim"), (G + " --ndim 4", "ndim"), (G + " --ndim -1", "ndim"),
                            (G + " --ndim two", "is not a valid integer")],
        "generate --kernel": [(G + " --kernel gauss", "'gauss' is not one of 'se', 'matern32', 'matern52'"),
                              (G + " --kernel ''", "is not one of"), (G + " --kernel se,matern32", "is not one of"),
                              (G + " --kernel SE", "is not one of")],
        "generate --lengths": [(G.replace("1.5,3", "''"), "--lengths is empty"),
                               (G.replace("1.5,3", "a,b"), "--lengths must look like"),
                               (G.replace("1.5,3", "0,1"), "length"),
                               (G.replace("1.5,3", "-1,2"), "length"),
                               (G.replace("1.5,3", "nan,2"), "length"),
                               (G.replace("1.5,3", "2,2"), "length")],
        "generate --amplitudes": [(G + " --amplitudes x", "--amplitudes must be comma-separated numbers"),
                                  (G + " --amplitudes nan", "amplitude"),
                                  (G + " --amplitudes -1", "amplitude"),
                                  (G + " --amplitudes 1,2", "amplitude")],
        "generate --noise": [(G + " --noise nan", "noise"), (G + " --noise -1", "noise"),
                             (G + " --noise inf", "noise"), (G + " --noise x", "is not a valid float")],
        "generate --normalize": [(G + " --normalize both", "'both' is not one of 'theory', 'sample'"),
                                 (G + " --normalize ''", "is not one of 'theory', 'sample'"),
                                 (G + " --normalize THEORY", "is not one of 'theory', 'sample'")],
        "generate --seed": [(G + " --seed -1", "seed"), (G + " --seed x", "is not a valid integer"),
                            (G + " --seed 1.5", "is not a valid integer")],
        "generate --dtype": [(G + " --dtype float64", "'float64' is not one of 'float32', 'float16'"),
                             (G + " --dtype int8", "is not one of"), (G + " --dtype ''", "is not one of")],
        "generate --compression": [(G + " --compression zip", "'zip' is not one of"),
                                   (G + " --compression ''", "is not one of"),
                                   (G + " --compression GZIP", "is not one of")],
        "generate --save-components": [(G + " --save-components=yes", "does not take a value"),
                                       (G + " --save-components=1", "does not take a value"),
                                       (G + " --save-components=no", "does not take a value")],
        "generate --preset": [(G + " --preset no-such-preset", "no-such-preset"),
                              (G + " --preset {typo}", "unknown parameters sise"),
                              (G + " --preset {not_json}", "not_json.json"),
                              (G + " --preset {missing}", "missing.h5")],
        "generate -o": [(G.replace("{root}/g.h5", "{text}/g.h5"), "notes.txt"),
                        (G.replace("{root}/g.h5", "{good}"), "already exists"),
                        (G.replace("{root}/g.h5", "{empty}"), "is a directory"),
                        (G.replace("{root}/g.h5", "{text}"), "already exists")],
        "generate --overwrite": [(G + " --overwrite=1", "does not take a value"),
                                 (G + " --overwrite --resume", "contradict"),
                                 (G.replace("{root}/g.h5", "{empty}") + " --overwrite", "is a directory")],
        "generate --batch-size": [(G + " --batch-size 0", "--batch-size must be at least 1"),
                                  (G + " --batch-size -1", "--batch-size must be at least 1"),
                                  (G + " --batch-size x", "is not a valid integer")],
        "generate --workers": [(G + " --workers 0", "--workers must be at least 1"),
                               (G + " --workers -2", "--workers must be at least 1"),
                               (G + " --workers x", "is not a valid integer")],
        "generate --resume": [(G + " --resume=1", "does not take a value"),
                              (G.replace("{root}/g.h5", "{good}") + " --resume", "good.h5"),
                              (G.replace("{root}/g.h5", "{text}") + " --resume", "notes.txt")],
        "generate --shard": [(G + " --shard 3/2", "--shard 3/2: shards of 2 are numbered 0 to 1"),
                             (G + " --shard a/b", "--shard must look like I/N"),
                             (G + " --shard 0/0", "N must be at least 1"),
                             (G + " --shard 1", "--shard must look like I/N"),
                             (G + " --shard -1/2", "--shard must look like I/N"),
                             (G + " --shard 0/9", "shard")],
        "generate --oracle": [(G + " --oracle=1", "does not take a value"),
                              (G + " --no-oracle=yes", "does not take a value"),
                              (G + " --oracle=no", "does not take a value")],
        "generate --device": [(G + " --device tpu", "'tpu' is not one of"), (G + " --device ''", "is not one of"),
                              (G + " --device CPU", "is not one of")],

        "info PATH": [("info {missing}", "does not exist"), ("info {damaged}", "not an HDF5 file"),
                      ("info {empty}", "empty"), ("info {text}", "notes.txt")],
        "info --json": [("info {good} --json=1", "does not take a value"),
                        ("info {missing} --json", "does not exist"),
                        ("info {good} --json extra", "unexpected extra argument")],

        "preview PATH": [("preview {missing} -o {root}/p.png", "does not exist"),
                         ("preview {damaged} -o {root}/p.png", "not an HDF5 file"),
                         ("preview {empty} -o {root}/p.png", "empty"),
                         ("preview {text} -o {root}/p.png", "notes.txt")],
        "preview -o": [("preview {good} -o {root}/grid.txt", "grid.txt"),
                       ("preview {good} -o {root}/no/such/dir/p.png", "does not exist"),
                       ("preview {good} -o {picture}", "already exists"),
                       ("preview {good} -o {empty}", "is a directory"),
                       ("preview {good} -o {root}/grid", "grid")],
        "preview --per-class": [("preview {good} --per-class 0 -o {root}/p.png", "--per-class must be at least 1"),
                                ("preview {good} --per-class -1 -o {root}/p.png", "--per-class must be at least 1"),
                                ("preview {good} --per-class x -o {root}/p.png", "is not a valid integer")],
        "preview --overwrite": [("preview {good} --overwrite=1 -o {root}/p.png", "does not take a value"),
                                ("preview {good} --overwrite -o {empty}", "is a directory"),
                                ("preview {good} --overwrite -o {good}", "good.h5")],

        "merge SHARDS": [("merge {missing} -o {root}/m.h5", "does not exist"),
                         ("merge {damaged} -o {root}/m.h5", "not an HDF5 file"),
                         ("merge {good} -o {root}/m.h5", "is not a shard"),
                         ("merge {shard0} -o {root}/m.h5", "missing: no shard holds them"),
                         ("merge {shard0} {shard0} {shard1} -o {root}/m.h5", "overlaps"),
                         ("merge {shard0} {foreign} -o {root}/m.h5", "belongs to another dataset"),
                         ("merge -o {root}/m.h5", "Missing argument")],
        "merge -o": [("merge {shard0} {shard1}", "Missing option '-o'"),
                     ("merge {shard0} {shard1} -o {nodir}", "does not exist"),
                     ("merge {shard0} {shard1} -o {good}", "already exists"),
                     ("merge {shard0} {shard1} -o {empty}", "is a directory")],
        "merge --overwrite": [("merge {shard0} {shard1} -o {root}/m.h5 --overwrite=1", "does not take a value"),
                              ("merge {shard0} {shard1} -o {empty} --overwrite", "is a directory"),
                              ("merge {shard0} {shard1} -o {shard0} --overwrite", "shard0.h5")],

        "oracle PATH": [("oracle {missing}", "does not exist"), ("oracle {damaged}", "not an HDF5 file"),
                        ("oracle {empty}", "empty"), ("oracle {text}", "notes.txt")],
        "oracle --indices": [("oracle {good} --indices 5", "--indices must look like 'A:B'"),
                             ("oracle {good} --indices a:b", "--indices must look like 'A:B'"),
                             ("oracle {good} --indices 1:2:3", "--indices must look like 'A:B'"),
                             ("oracle {good} --indices 10:5", "indices"),
                             ("oracle {good} --indices 0:1000", "indices")],
        "oracle --crop": [("oracle {good} --crop 0", "crop"), ("oracle {good} --crop -4", "crop"),
                          ("oracle {good} --crop 1000", "crop"), ("oracle {good} --crop x", "is not a valid integer")],
        "oracle --workers": [("oracle {good} --workers 0", "--workers must be at least 1, but got 0"),
                             ("oracle {good} --workers -2", "--workers must be at least 1"),
                             ("oracle {good} --workers x", "is not a valid integer"),
                             ("oracle {good} --workers 1.5", "is not a valid integer")],
        "oracle --json": [("oracle {good} --json=1", "does not take a value"),
                          ("oracle {missing} --json", "does not exist"),
                          ("oracle {good} --json --crop 0", "crop")],

        "train DATA": [(T.replace("{good}", "{missing}"), "does not exist"),
                       (T.replace("{good}", "{damaged}"), "not an HDF5 file"),
                       (T.replace("{good}", "{empty}"), "empty"),
                       (T.replace("{good}", "{text}"), "notes.txt"),
                       (T.replace("{good}", "{typo}"), "unknown parameters sise"),
                       (T.replace("{good}", "no-such-preset"), "no-such-preset")],
        "train --backdrop": [(T + " --backdrop=1", "does not take a value"),
                             (T + " --no-backdrop --mask-prob 0.5", "--mask-prob"),
                             (T + " --no-backdrop --mask-block 2", "--mask-block")],
        "train --mask-prob": [(T + " --mask-prob 1.5", "mask_prob"), (T + " --mask-prob -0.1", "mask_prob"),
                              (T + " --mask-prob half", "--mask-prob must be comma-separated numbers"),
                              (T + " --mask-prob nan", "mask_prob"),
                              (T + " --mask-prob 0.3,0.5,0.95", "3 mask probabilities for 2 scales"),
                              (T + " --backdrop --mask-prob 0.3,0.5,0.95", "3 mask probabilities for 2 scales"),
                              (T + " --mask-prob ''", "--mask-prob must be comma-separated numbers")],
        "train --mask-block": [(T + " --mask-block 0", "mask_block"), (T + " --mask-block -1", "mask_block"),
                               (T + " --mask-block 1.5", "--mask-block must be comma-separated integers"),
                               (T + " --backdrop --mask-block 1,1,2", "3 mask block sizes for 2 scales"),
                               (T + " --mask-block x", "--mask-block must be comma-separated integers")],
        "train --mask-scope": [(T + " --mask-scope channel", "'channel' is not one of"),
                               (T + " --mask-scope", "requires an argument"),
                               (T + " --no-backdrop --mask-scope batch", "--no-backdrop turns off")],
        "train --topology": [(T + " --topology ring", "'ring' is not one of"),
                             (T + " --topology ''", "is not one of"),
                             (T + " --topology series --heads 2,1", "increasing"),
                             (T + " --topology series --heads 2,2", "increasing")],
        "train --augment": [(T + " --augment=1", "does not take a value"),
                            (T + " --no-augment=1", "does not take a value"),
                            (T + " --augment=no", "does not take a value")],
        "train --whiten": [(T + " --whiten=1", "does not take a value"),
                           (T + " --no-whiten=yes", "does not take a value"),
                           (T + " --whiten --crop 1", "crop")],
        "train --crop": [(T + " --crop 0", "crop must be an integer of at least 2"),
                         (T + " --crop 1", "crop must be an integer of at least 2"),
                         (T + " --crop 64", "crop must be between"),
                         (T + " --crop 2 --heads 1,3", "crop must be between 8"),
                         (T + " --crop x", "is not a valid integer")],
        "train --n-train": [(T + " --n-train 0", "n_train"), (T + " --n-train -4", "n_train"),
                            (T + " --n-train 7", "cannot be balanced over 4 classes"),
                            (T + " --n-train 1000", "1016 is more than the 64 samples"),
                            (T + " --n-train x", "is not a valid integer")],
        "train --n-test": [(T + " --n-test 0", "n_test"), (T + " --n-test -4", "n_test"),
                           (T + " --n-test 6", "cannot be balanced over 4 classes"),
                           (T + " --n-test 1000", "1016 is more than the 64 samples")],
        "train --test-data": [(T + " --test-data {missing}", "does not exist"),
                              (T + " --test-data {damaged}", "not an HDF5 file"),
                              (T + " --test-data {good}", "training data's seed"),
                              (T + " --test-data {other_stats}", "other parameters")],
        "train --generate": [(T + " --generate 0", "--generate must be a positive number"),
                             (T + " --generate -1", "--generate must be a positive number"),
                             (T + " --generate x", "is not a valid integer"),
                             (T + " --generate 8", "more than the 8 samples")],
        "train --epochs": [(T + " --epochs 0", "epochs must be a positive integer"),
                           (T + " --epochs -1", "epochs must be a positive integer"),
                           (T + " --epochs x", "is not a valid integer")],
        "train --batch-size": [(T + " --batch-size 0", "batch_size"),
                               (T + " --batch-size 1", "batch_size must be at least 2"),
                               (T + " --batch-size 100", "batch_size (100) must not exceed n_train (16)"),
                               (T + " --batch-size x", "is not a valid integer")],
        "train --lr": [(T + " --lr 0", "lr must be a positive number"), (T + " --lr -1", "lr must be a positive"),
                       (T + " --lr nan", "lr must be a positive number"), (T + " --lr inf", "lr must be a positive")],
        "train --warmup": [(T + " --warmup -0.1", "warmup"), (T + " --warmup 1", "warmup"),
                           (T + " --warmup nan", "warmup")],
        "train --weight-decay": [(T + " --weight-decay -1", "weight_decay"), (T + " --weight-decay nan", "weight_decay"),
                                 (T + " --weight-decay inf", "weight_decay")],
        "train --clip-grad": [(T + " --clip-grad 0", "clip_grad"), (T + " --clip-grad -1", "clip_grad"),
                              (T + " --clip-grad nan", "clip_grad")],
        "train --eval-every": [(T + " --eval-every -1", "eval_every"), (T + " --eval-every x", "is not a valid"),
                               (T + " --eval-every 1.5", "is not a valid integer")],
        "train --device": [(T + " --device tpu", "'tpu' is not one of 'auto', 'cpu', 'cuda'"),
                           (T + " --device ''", "is not one of"), (T + " --device CPU", "is not one of")],
        "train --precision": [(T + " --precision fp64", "'fp64' is not one of 'fp32', 'tf32', 'bf16'"),
                              (T + " --precision ''", "is not one of"),
                              (T + " --precision half", "is not one of")],
        "train --seed": [(T + " --seed -1", "seed must be a non-negative integer"),
                         (T + " --seed x", "is not a valid integer"), (T + " --seed 1.5", "is not a valid integer")],
        "train --heads": [(T + " --heads 0,1", "head_stages must be a non-empty list of stages 1 to 5"),
                          (T + " --heads 1,2,3", "got 3 head stages for 2 scales"),
                          (T + " --heads 1,9", "stages 1 to 5 (2**stage <= the 32-pixel images), but got (1, 9)"), (T + " --heads a,b", "--heads must be comma-separated"),
                          (T + " --heads 1", "got 1 head stage for 2 scales"),
                          (T + " --heads ''", "--heads must be comma-separated")],
        "train --width": [(T + " --width 0", "width must be a positive integer"),
                          (T + " --width -1", "width must be a positive integer"),
                          (T + " --width x", "is not a valid integer")],
        "train --out": [(T.replace("{root}/t", "{good}"), "good.h5"),
                        (T.replace("{root}/t", "{run}"), "already holds a run"),
                        (T.replace("{root}/t", "{text}"), "notes.txt"),
                        (T.replace("{root}/t", "{damaged_run}"), "already holds a run")],
        "train --resume": [("train {good} --resume", "--resume needs --out"),
                           (T.replace("{root}/t", "{empty}") + " --resume", "not a training run"),
                           (T.replace("{root}/t", "{damaged_run}") + " --resume", "damaged"),
                           ("train {good} --out {run} --resume --width 8", "cannot resume")],
        "train --tensorboard": [(T + " --tensorboard {text}", "notes.txt' is a file"),
                                (T + " --tensorboard {text}/tb", "notes.txt is a file, not a directory"),
                                (T + " --tensorboard", "requires an argument")],

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
                         ("evaluate {run} {other_seed} --n 1000", "more than the 32 samples"),
                         ("evaluate {run} --n x", "is not a valid integer")],
        "evaluate --device": [("evaluate {run} --device tpu", "'tpu' is not one of 'auto', 'cpu', 'cuda'"),
                              ("evaluate {run} --device ''", "is not one of"),
                              ("evaluate {run} --device CPU", "is not one of")],
        "evaluate --json": [("evaluate {run} --json=1", "does not take a value"),
                            ("evaluate {missing} --json", "not a training run"),
                            ("evaluate {run} {good} {good} --json", "unexpected extra argument")],

        "experiment --plan": [("experiment --plan bogus --out {root}/e", "'bogus' is not one of"),
                              ("experiment --plan '' --out {root}/e", "is not one of"),
                              ("experiment --plan PAPER128 --out {root}/e", "is not one of")],
        "experiment --jobs": [("experiment --jobs 0 --out {root}/e", "jobs must be a positive integer"),
                              ("experiment --jobs -1 --out {root}/e", "jobs must be a positive integer"),
                              ("experiment --jobs x --out {root}/e", "is not a valid integer")],
        "experiment --out": [("experiment --out {good}", "is not a directory"),
                             ("experiment --out {text} --report", "is not a directory"),
                             ("experiment --out {text} --dry-run", "is not a directory")],
        "experiment --report": [("experiment --report --out {empty}", "holds no finished run"),
                                ("experiment --report --dry-run --out {root}/e", "contradict"),
                                ("experiment --report=1 --out {root}/e", "does not take a value")],
        "experiment --method": [("experiment --method {root}/nowhere.py:fit --out {root}/e", "does not exist"),
                                ("experiment --method fit --out {root}/e", "must be path/to/file.py:function"),
                                ("experiment --method {text}:fit --out {root}/e", "is not a Python file"),
                                ("experiment --method msgp.spec:choices_of --out {root}/e", "is not marked as a method"),
                                ("experiment --method no_such_module:fit --out {root}/e", "cannot import module"),
                                ("experiment --plan auc --method {root}/nowhere.py:fit --out {root}/e",
                                 "has its own baselines")],
        "experiment --dry-run": [("experiment --dry-run=1 --out {root}/e", "does not take a value"),
                                 ("experiment --dry-run --jobs 0 --out {root}/e", "jobs must be a positive integer"),
                                 ("experiment --dry-run --plan bogus --out {root}/e", "is not one of")],
        "experiment --shard": [("experiment --shard 2/2 --out {root}/e", "are numbered 0 to 1"),
                               ("experiment --shard 1 --out {root}/e", "must look like I/N"),
                               ("experiment --shard 0/2 --report --out {root}/e", "contradict"),
                               ("experiment --plan f1 --shard 0/2 --out {root}/e", "runs on one machine")],
    }
    return [(f"{option}: {command}", command, fragment)
            for option, group in cases.items() for command, fragment in group]


CASES = _cases()


def test_the_table_covers_every_option_of_every_command():
    """Three or more bad values for each option and argument of each command."""
    covered = {name.split(":")[0] for name, _, _ in CASES}
    for name, command in cli.main.commands.items():
        for param in command.params:
            if param.name == "help":
                continue
            label = param.name.upper() if isinstance(param, click.Argument) else param.opts[0]
            key = f"{name} {label}"
            assert key in covered, key
            assert sum(case.startswith(key + ":") for case, _, _ in CASES) >= 3, key
    assert len(CASES) >= 150


@pytest.mark.parametrize("name, command, fragment", CASES, ids=[name for name, _, _ in CASES])
def test_bad_value(files, monkeypatch, name, command, fragment):
    root = files["root"]
    monkeypatch.chdir(root)  # default outputs (data/msgp.h5, runs/<date>) would land here too
    args = shlex.split(command.format(**{k: str(v) for k, v in files.items()}))
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert lines and lines[-1].startswith("Error:"), result.output
    assert sum(line.startswith("Error:") for line in lines) == 1, result.output
    assert fragment in lines[-1], result.output
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
    ({"head_stages": (0, 1)}, "head_stages must be a non-empty list of stages 1 to 5"),
    ({"head_stages": (1, 2, 3)}, "got 3 head stages for 2 scales"),
    ({"head_stages": (1, 9)}, r"stages 1 to 5 \(2\*\*stage <= the 32-pixel images\), but got \(1, 9\)"),
    ({"head_stages": (2, 1), "topology": "series"}, "series topology needs increasing head_stages"),
    ({"backdrop": True, "mask_block": (1, 1, 2)}, "got 3 mask block sizes for 2 scales"),
    ({"backdrop": True, "mask_prob": (0.3, 0.5, 0.95)}, "got 3 mask probabilities for 2 scales"),
    ({"crop": 2, "head_stages": (1, 3)}, "crop must be between 8"),
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
    with pytest.raises(training.ConfigError, match=r"increasing head_stages .* but got \(1, 1\)"):
        training.check_config(training.TrainConfig(data="x.h5", topology="series"), spec)
    training.check_config(training.TrainConfig(data="x.h5", topology="series", head_stages=(1, 2)), spec)
