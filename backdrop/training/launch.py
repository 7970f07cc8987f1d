"""Train one run from a settings file, in one process or in every process ``torchrun`` starts::

    python -m backdrop.training.launch SETTINGS.json --out DIR
    torchrun --nproc-per-node N -m backdrop.training.launch SETTINGS.json --out DIR
    torchrun --nproc-per-node N -m backdrop.training.launch --out DIR --resume [--epochs E]

``SETTINGS.json`` is a run's ``config.json`` (the file ``msgp train --config`` reads: its
``train`` entry) or a JSON object of :class:`~backdrop.training.TrainConfig` fields, such as
``{"data": "data/msgp.h5", "backdrop": true}``; ``--epochs`` and ``--device`` replace its values.
``--resume`` continues the run in ``--out`` with its own saved settings (:func:`~backdrop.training.resume`).
Under ``torchrun`` every process joins the process group (gloo on CPU, nccl on GPU) and they train
together with DistributedDataParallel; rank 0 alone writes the run directory and prints. Bad input
is one ``Error:`` line and exit code 2, a diverged run exit code 1, Ctrl-C exit code 130.

This module is the library's entry point for distributed runs; ``msgp train`` takes the same
settings as command-line options.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch.distributed as dist

from msgp.errors import MSGPError, Option, as_options

from .config import DEVICES, TrainConfig, TrainingError, read_config
from .devices import init_distributed
from .loop import train

# The library parameters a message may name, as this command's options.
_OPTIONS = {"out": Option("--out"), "epochs": Option("--epochs"), "device": Option("--device"),
            "resume": Option("--resume", is_flag=True)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m backdrop.training.launch",
                                     description=__doc__.split("\n\n")[0].rstrip(":"))
    parser.add_argument("settings", nargs="?", type=Path,
                        help="a run's config.json, or a JSON object of TrainConfig fields (not with --resume)")
    parser.add_argument("--out", type=Path, required=True, help="the run directory")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out with its saved settings")
    parser.add_argument("--epochs", type=int, help="passes over the training set, in place of the settings'")
    parser.add_argument("--device", choices=DEVICES, help="where it trains, in place of the settings'")
    return parser


def _progress(rank: int):
    """A progress callback that prints the start and the scored epochs (rank 0 only)."""
    def progress(event, info):
        if rank != 0:
            return
        if event == "start":
            print(f"{info['n_train']} train / {info['n_test']} test images, {info['method']} on {info['device']} "
                  f"x{info['world_size']}, {info['epochs']} epochs of {info['steps_per_epoch']} steps", flush=True)
        elif event == "epoch" and info["test_accuracy"] is not None:
            print(f"epoch {info['epoch']}: test accuracy joint {info['test_accuracy']['joint']:.3f}", flush=True)
    return progress


def main(argv: list[str] | None = None) -> int:
    """Run the command with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.settings is None) != args.resume:
        parser.error("give SETTINGS.json, or --resume to continue the run in --out (not both)")
    options = {k: v for k, v in (("epochs", args.epochs), ("device", args.device)) if v is not None}
    distributed = False
    try:
        base = read_config(args.out) if args.resume else TrainConfig.from_json(args.settings)
        config = TrainConfig.from_options(base, **options)
        distributed = init_distributed(config.device)
        rank = dist.get_rank() if distributed else 0
        summary = train(config, args.out, resume=args.resume, progress=_progress(rank))
    except KeyboardInterrupt:
        print(f"interrupted: the checkpoint saved after each epoch in {args.out} resumes the run; to go on: "
              f"python -m backdrop.training.launch --out {args.out} --resume", file=sys.stderr)
        return 130
    except MSGPError as err:
        print(f"Error: {as_options(str(err), _OPTIONS)}", file=sys.stderr)
        return 1 if isinstance(err, TrainingError) else 2
    finally:
        if distributed:
            dist.destroy_process_group()
    if rank == 0:
        test, best = summary["test_accuracy"], summary["oracle_accuracy"]
        print(f"test accuracy joint {test['joint']:.3f} (oracle {best['joint']:.3f}), scales "
              + ", ".join(f"{a:.3f} ({o:.3f})" for a, o in zip(test["scales"], best["scales"])))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
