"""The ``msgp`` command line: thin commands that parse, call one library function, and print."""
from __future__ import annotations

import json
import signal
from contextlib import contextmanager
from pathlib import Path

import click
from click.core import ParameterSource

import msgp
from msgp import io
from msgp.checks import Checks
from msgp.errors import MSGPError, Option, as_options
from msgp.cpus import available_cpus
from msgp.intervals import format_accuracy
from msgp.progress import progress_bar
from msgp.spec import DTYPES, MAX_SCALES, NORMALIZE, DatasetSpec, SpecError, load_preset
from msgp.kernels import KERNELS
from msgp.writer import DEVICES as WRITE_DEVICES


# Samples `msgp generate` scores the oracle on after writing: a standard error of at most 2.2 points.
ORACLE_SAMPLES = 500
# Checks of option text, whose messages name the option as the library does (`shard`), for as_flags.
_OPTIONS = Checks(quote=True)


class InputError(click.ClickException):
    """Bad input: one line on stderr, exit code 2."""

    exit_code = 2


def _fail(err: Exception):
    raise InputError(as_flags(str(err), click.get_current_context().command)) from None


def as_flags(message: str, command: click.Command) -> str:
    """A library message, which names Python parameters (```crop```, ```overwrite=True```),
    worded as ``command``'s flags (``--crop``, ``--overwrite``); names the command has no option
    for stay as they are."""
    return as_options(message, {p.name: Option(max(p.opts, key=len), p.is_flag,
                                               max(p.secondary_opts, key=len) if p.secondary_opts else None)
                                for p in command.params if isinstance(p, click.Option)})


class Command(click.Command):
    """A command that ends any :class:`msgp.MSGPError` it meets as one line, ``Error: ...``, worded
    as its own flags, with exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MSGPError as err:
            raise InputError(as_flags(str(err), self)) from None


class Group(click.Group):
    command_class = Command


class RegistryChoice(click.Choice):
    """A ``click.Choice`` whose names a registry gives when they are first needed (parsing,
    ``--help``, shell completion): the registries of plans and training settings import torch,
    which every other command, and every completion of one, would otherwise wait for.

    Parameters
    ----------
    names : returns the allowed values, in the order ``--help`` lists them.
    """

    def __init__(self, names):
        self._names = names
        self.case_sensitive = True

    @property
    def choices(self):
        return tuple(self._names())


def _plan_names():
    from backdrop import runner

    return tuple(runner.plans())


def _training_choices(name: str):
    def names():
        from backdrop.training import config

        return getattr(config, name)
    return names


@contextmanager
def _interruptible(how_to_go_on: str, at_once: bool = False):
    """Ctrl-C ends the command with exit code 130 (128 + SIGINT, what a shell reports for it) and
    one line on stderr saying what is kept and how to go on, in place of click's ``Aborted!``.

    Yields ``check``, which the command's progress callback calls between pieces of work: the
    first Ctrl-C is noted and ``check`` raises it there. Raised where the signal lands, it could
    land in a destructor or a weakref callback (a process pool's bookkeeping has them), where
    Python prints it as a traceback and drops it. A second Ctrl-C raises at once; with
    ``at_once``, the first does too, for work whose progress comes minutes apart.
    """
    noted = []

    def on_sigint(signum, frame):
        noted.append(signum)
        if at_once or len(noted) > 1:
            raise KeyboardInterrupt

    def check():
        if noted:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield check
    except KeyboardInterrupt:
        click.echo(f"interrupted: {how_to_go_on}", err=True)
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGINT, previous)


def _checked(check, progress):
    """``progress(event, info)`` that first raises a Ctrl-C ``check`` has noted."""
    def checked(event, info):
        check()
        progress(event, info)
    return checked


def _parse_lengths(text: str):
    try:
        rows = [[float(v) for v in row.split(",")] for row in text.split(";") if row.strip()]
    except ValueError:
        raise InputError(f"--lengths must look like '9.5,10;80,140' (scales separated by ';'), but got {text!r}") from None
    if not rows:
        raise InputError("--lengths is empty")
    return rows


def _parse_floats(text: str, option: str):
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"{option} must be comma-separated numbers, but got {text!r}") from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
# From the package itself, so that a checkout run without installing answers too.
@click.version_option(msgp.__version__, prog_name="msgp")
def main():
    """Exact multi-scale Gaussian-process texture datasets, and backdrop to learn from them."""


@main.command()
@click.option("--scales", "n_scales", type=int, default=3, show_default=True,
              help=f"Number of scales K (1..{MAX_SCALES}); picks default length scales and amplitudes for --size.")
@click.option("--n", "n", type=int, default=10000, show_default=True, help="Number of samples.")
@click.option("--size", type=int, default=128, show_default=True, help="Pixels per axis.")
@click.option("--ndim", type=int, default=2, show_default=True, help="Dimensions of each field: 1, 2 or 3.")
@click.option("--kernel", type=click.Choice(KERNELS), default="se", show_default=True, help="Covariance kernel.")
@click.option("--lengths", "length_scales",
              help="Candidate length scales in pixels, scales separated by ';', e.g. '9.5,10;80,140'.")
@click.option("--amplitudes", help="Amplitude of each scale, e.g. '0.75,1.25'.")
@click.option("--noise", type=float, default=0.0, show_default=True, help="Std of white observation noise.")
@click.option("--normalize", type=click.Choice(NORMALIZE), default="theory", show_default=True,
              help="theory: unit variance in expectation; sample: each component standardised per sample.")
@click.option("--seed", type=int, default=0, show_default=True, help="Root random seed.")
@click.option("--dtype", type=click.Choice(DTYPES), default="float32", show_default=True, help="Storage dtype.")
@click.option("--compression", type=click.Choice(["gzip", "lzf"]), default=None, help="HDF5 compression.")
@click.option("--save-components", is_flag=True, help="Also store each scale's unit-variance component.")
@click.option("--preset", help="A preset shipped with msgp (paper-2scale, paper-3scale) or a .json path; options given override it.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=io.DEFAULT_PATH, show_default=True,
              help="The HDF5 file to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@click.option("--batch-size", type=int, default=32, show_default=True, help="Samples per inverse-FFT batch (capped at 4 Mpixels per batch, to bound memory).")
@click.option("--workers", type=int, help="Processes drawing samples (default: the CPUs this process may use); the file is the same for any.")
@click.option("--resume", is_flag=True, help="Finish an interrupted run of the same command (same parameters).")
@click.option("--shard", help="Write only shard I of N, like '3/16'; join the shards with msgp merge.")
@click.option("--device", type=click.Choice(WRITE_DEVICES), default="cpu", show_default=True,
              help="Where the inverse FFTs run; cuda needs a CUDA device and one process.")
@click.option("--oracle/--no-oracle", "run_oracle", default=True, show_default=True,
              help=f"Score the oracle on the first {ORACLE_SAMPLES} samples afterwards (minutes at 1024²).")
@click.pass_context
def generate(ctx, output, overwrite, batch_size, workers, resume, shard, device, run_oracle, preset, n_scales,
             length_scales, amplitudes, **values):
    """Generate a labeled multi-scale GP dataset into an HDF5 file."""
    given = {name for name in ctx.params if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE}
    shard = _parse_shard(shard)
    spec = DatasetSpec.from_options(
        preset, n_scales if "n_scales" in given else None, **{k: v for k, v in values.items() if k in given},
        length_scales=None if length_scales is None else _parse_lengths(length_scales),
        amplitudes=None if amplitudes is None else _parse_floats(amplitudes, "--amplitudes"))
    workers = available_cpus() if workers is None else workers
    start, stop = (0, spec.n) if shard is None else io.shard_range(spec.n, *shard)
    resume_hint = (f"{output} keeps the samples written so far; rerun the same command with --resume"
                   f"{' in place of --overwrite' if overwrite else ''} to finish it")
    with _interruptible(resume_hint) as check, progress_bar(total=stop - start, unit="sample", desc="generate") as bar:

        def progress(n):
            check()
            bar.update(n)

        result = io.write(spec, output, overwrite=overwrite, resume=resume, shard=shard, workers=workers,
                          device=device, batch_size=batch_size, progress=progress)
    part = "" if shard is None else f" (shard {shard[0]}/{shard[1]}: samples {start} to {stop - 1})"
    click.echo(f"wrote {result.path}: {result.n} samples of {'x'.join(map(str, spec.shape))}{part}, "
               f"{io.human_bytes(result.bytes_on_disk)} on disk, {result.generated / result.seconds:.0f} samples/s")
    width = max(len(name) for name in spec.class_names)
    for name, count in zip(spec.class_names, result.class_counts):
        click.echo(f"  class {name:<{width}}  {count}")
    if run_oracle:
        with _interruptible(f"{result.path} is complete; only the oracle's summary was cut short "
                            f"(msgp oracle {result.path} scores it)"):
            click.echo(_oracle_summary(result.path, min(result.n, ORACLE_SAMPLES), workers))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def _parse_shard(text: str | None):
    """``--shard I/N`` as ``(I, N)``, checked (:meth:`msgp.checks.Checks.shard_text`)."""
    return None if text is None else _OPTIONS.shard_text("shard", text)


@main.command()
@click.argument("path", type=click.Path(path_type=Path), default=io.DEFAULT_PATH)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def info(path, as_json):
    """Parameters, class counts, completeness and an integrity check of a dataset.

    Exits with status 1 when the integrity check finds a problem (an incomplete file included).
    """
    report = io.inspect(path)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        spec = report["spec"]
        click.echo(f"{report['path']}  (msgp format {report['format_version']}, written by msgp {report['msgp_version']})")
        click.echo(f"  samples       {report['n_written']} of {spec['n']} written, "
                   f"{'complete' if report['complete'] else 'INCOMPLETE'}, {io.human_bytes(report['bytes_on_disk'])}")
        if report["file_id"] is not None:
            click.echo(f"  file id       {report['file_id']}")
        click.echo(f"  fields        {spec['ndim']}-D, {spec['size']} px per axis, {spec['dtype']}, "
                   f"compression {spec['compression'] or 'none'}{', with components' if spec['save_components'] else ''}")
        click.echo(f"  kernel        {spec['kernel']}, normalize={spec['normalize']}, noise={spec['noise']:g}, seed={spec['seed']}")
        for s, (row, amp) in enumerate(zip(spec["length_scales"], spec["amplitudes"])):
            click.echo(f"  scale {s}       length scales {', '.join(f'{v:g}' for v in row)} px, amplitude {amp:g}")
        width = max(len(name) for name in report["class_names"])
        for name, count in zip(report["class_names"], report["class_counts"]):
            click.echo(f"  class {name:<{width}}  {count}")
        click.echo("  integrity     " + ("ok" if report["ok"] else "; ".join(report["problems"])))
    if not report["ok"]:
        raise SystemExit(1)


@main.command()
@click.argument("path", type=click.Path(path_type=Path), default=io.DEFAULT_PATH)
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("grid.png"), show_default=True,
              help="The picture to write; its suffix names the format (png, pdf, svg, ...).")
@click.option("--per-class", type=int, default=3, show_default=True, help="Samples drawn per class.")
@click.option("--overwrite", is_flag=True, help="Replace an existing picture.")
def preview(path, output, per_class, overwrite):
    """Draw a few samples per class and each scale's power spectrum against the kernel's."""
    from msgp import preview as preview_module

    preview_module.draw(path, output, per_class=per_class, overwrite=overwrite)
    click.echo(f"wrote {output}")


def _parse_indices(text: str | None):
    if text is None:
        return None, None
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        return tuple(int(p) if p.strip() else None for p in parts)
    except ValueError:
        raise InputError(f"--indices must look like 'A:B' (sample A up to, not including, B), but got {text!r}") from None


def _oracle_summary(path: Path, n: int, workers: int) -> str:
    from msgp import oracle as oracle_module

    report = oracle_module.score_file(path, (0, n), workers=workers)
    scales = ", ".join(f"{100 * scale['accuracy']:.1f}%" for scale in report["scales"])
    return (f"  oracle   joint {format_accuracy(report['joint'])}, per scale {scales} (finest first), Bayes-optimal "
            f"on the first {n} samples; `msgp oracle {path} --crop C` for crops")


@main.command()
@click.argument("path", type=click.Path(path_type=Path), default=io.DEFAULT_PATH)
@click.option("--indices", help="Samples A:B to classify (A or B may be left out); default all.")
@click.option("--crop", type=int, help="Use only a CROP^ndim corner of each sample (exact crop likelihood).")
@click.option("--workers", type=int, help="Processes scoring the samples (default: the CPUs this process may use); "
              "the result is the same for any.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def oracle(path, indices, crop, workers, as_json):
    """Bayes-optimal accuracy: exact class likelihoods from the dataset's own parameters.

    Per-scale and joint accuracy with 95% Wilson intervals, and per-scale confusion matrices.
    With --crop, the best any learner can do from a CROP^ndim crop of each sample.
    """
    from msgp import oracle as oracle_module

    start, stop = _parse_indices(indices)
    workers = available_cpus() if workers is None else workers
    with _interruptible("the oracle writes nothing, so there is nothing to resume; --indices A:B scores "
                        "part of the file") as check, progress_bar(unit="sample" if crop is None else "class",
                                                                    desc="oracle") as bar:

        def progress(done, total):
            check()
            if done == 0:
                bar.reset(total=total)
            bar.update(done - bar.n)

        report = oracle_module.score_file(path, (start, stop), crop=crop, workers=workers, progress=progress)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    view = "whole image" if crop is None else f"{crop}-px corner crop"
    click.echo(f"{report['path']}: samples {report['start']}:{report['stop']} ({report['n']}), {view}")
    click.echo(f"  model    {report['model']}; white floor {report['floor']:.3g} per pixel")
    joint = report["joint"]
    click.echo(f"  joint    {format_accuracy(joint)}  (chance {100 * joint['chance']:.1f}%, "
               f"mean posterior {100 * joint['mean_confidence']:.1f}%)")
    for s, scale in enumerate(report["scales"]):
        names = [f"{v:g}" for v in scale["length_scales"]]
        click.echo(f"  scale {s}  {format_accuracy(scale)}  (chance {100 * scale['chance']:.1f}%, "
                   f"mean posterior {100 * scale['mean_confidence']:.1f}%), lengths {', '.join(names)} px")
        width = max(len(text) for text in names + [str(v) for row in scale["confusion"] for v in row])
        click.echo("           confusion, rows true, columns predicted:")
        click.echo(f"           {'':>{width}}  " + "  ".join(f"{name:>{width}}" for name in names))
        for name, row in zip(names, scale["confusion"]):
            click.echo(f"           {name:>{width}}  " + "  ".join(f"{v:>{width}}" for v in row))


def _parse_mask_prob(text: str):
    """``"P"`` (every head) or ``"P0,P1,..."`` (one per scale)."""
    values = _parse_floats(text, "--mask-prob")
    return values[0] if len(values) == 1 else tuple(values)


def _parse_blocks(text: str):
    """``"B"`` (every scale) or ``"B0,B1,..."`` (one per scale), positive integers."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--mask-block must be comma-separated integers like '1,1,2', but got {text!r}") from None
    return values[0] if len(values) == 1 else values


def _parse_stages(text: str | None):
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--heads must be comma-separated stage numbers like '1,2,3', but got {text!r}") from None


# The options of `msgp train` whose text becomes a TrainConfig setting other than as click reads it.
_SETTING_TEXT = {"mask_prob": _parse_mask_prob, "mask_block": _parse_blocks, "head_stages": _parse_stages}


def _train_options(ctx, settings: dict) -> dict:
    """The TrainConfig settings of the options given on the command line (not their defaults:
    TrainConfig.from_options puts them over a saved run's settings or the defaults)."""
    given = {name for name in ctx.params if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE}
    options = {name: _SETTING_TEXT.get(name, lambda v: v)(value) for name, value in settings.items() if name in given}
    if "data" in given or ctx.params["generate"] is not None:
        options["data"] = _train_source(ctx.params["data"], ctx.params["generate"], "data" in given)
    if ctx.params["test_data"] is not None:
        options["test_data"] = _train_source(ctx.params["test_data"], None, True)
    return options


@main.command()
@click.argument("data", type=click.Path(path_type=Path), default=io.DEFAULT_PATH)
@click.option("--backdrop/--no-backdrop", default=False, show_default=True,
              help="Backdrop masks at every scale's depth (off: the full gradient, which measured better).")
@click.option("--mask-prob", default="0.25", show_default=True,
              help="Backdrop mask probability: one value, or one per scale like '0.5,0.5,0.25'; implies --backdrop.")
@click.option("--mask-block", default="1", show_default=True,
              help="Side of the square blocks a mask keeps or drops together: one value, or one per scale; "
              "implies --backdrop.")
@click.option("--mask-scope", type=RegistryChoice(_training_choices("MASK_SCOPES")), default="sample", show_default=True,
              help="sample: each sample its own mask; batch: one mask shared by the batch, the 2018 reference's estimator.")
@click.option("--topology", type=RegistryChoice(_training_choices("TOPOLOGIES")), default="heads", show_default=True,
              help="heads: one head per scale behind its own mask; series: the masks in series along one trunk, one classifier.")
@click.option("--augment/--no-augment", default=True, show_default=True,
              help="Random periodic shifts, flips and axis permutations of every training image (exact symmetries of the data).")
@click.option("--whiten/--no-whiten", default=True, show_default=True,
              help="A second input channel: the field whitened by the data's mean power spectrum (whole images only).")
@click.option("--crop", type=int, help="Baseline: train on random crops of this side, test on whole images.")
@click.option("--n-train", type=int,
              help="Class-balanced training samples (default: the multiple of the class count nearest 512 that the data hold).")
@click.option("--n-test", type=int,
              help="Class-balanced test samples, disjoint (default: as --n-train).")
@click.option("--test-data", type=click.Path(path_type=Path),
              help="Draw the test samples from this compatible file (or preset, or spec .json, generated).")
@click.option("--generate", type=int, metavar="N",
              help="Train on N samples generated as they are read, no file: of DATA's description when DATA "
              "is given, else of `msgp generate`'s defaults.")
@click.option("--epochs", type=int, help="Passes over the training set (default: 30, and on images of fewer pixels "
              "than 128² as many more as see as many pixels, at most 120: 120 on 2048-pixel lines).")
@click.option("--batch-size", type=int, default=16, show_default=True, help="Global batch, in images.")
@click.option("--lr", type=float, default=2e-3, show_default=True, help="Peak AdamW learning rate.")
@click.option("--warmup", type=float, default=0.1, show_default=True,
              help="Fraction of the steps with a linear warm-up to --lr, before the cosine decay to zero.")
@click.option("--weight-decay", type=float, default=0.0, show_default=True, help="AdamW's decoupled weight decay.")
@click.option("--clip-grad", type=float, default=1.0, show_default=True, help="Clip the gradient's global norm to this value.")
@click.option("--eval-every", type=int, default=1, show_default=True,
              help="Score the test set every K epochs and after the last (0: after the last only).")
@click.option("--device", type=RegistryChoice(_training_choices("DEVICES")), default="auto", show_default=True,
              help="Where training runs; auto: cuda when there is one.")
@click.option("--precision", type=RegistryChoice(_training_choices("PRECISIONS")), default="fp32", show_default=True,
              help="Arithmetic of the training steps: fp32, tf32 (CUDA matmuls and convolutions in TensorFloat-32) "
              "or bf16 (autocast); calibration and scoring run in float32.")
@click.option("--seed", type=int, default=0, show_default=True, help="Root of every random stream.")
@click.option("--heads", "head_stages", help="Backbone stage of each scale's head, like '1,2,3' (default: by receptive field).")
@click.option("--width", type=int, default=16, show_default=True, help="Channels of the network's stem.")
@click.option("--out", type=click.Path(path_type=Path), help="Run directory (default runs/<date-time>).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.")
@click.option("--config", "config_file", type=click.Path(path_type=Path), metavar="RUN/config.json",
              help="Train anew with the settings of that run, but for the options given here.")
@click.option("--tensorboard", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Also write TensorBoard event files to DIR, one directory per run "
              "(needs the tensorboard extra: pip install 'msgp[tensorboard]').")
@click.pass_context
def train(ctx, data, test_data, generate, out, resume, config_file, tensorboard, **settings):
    """Train a multi-scale network (one head per scale) and compare it with the oracle.

    DATA is an msgp file, or a preset (e.g. paper-2scale) or spec .json whose samples are generated
    as they are read: no file, and the same samples, subsets and results as from the file
    `msgp generate` writes for it.

    Under ``torchrun --nproc-per-node N -m backdrop.training.launch SETTINGS.json --out DIR`` a
    run trains with DistributedDataParallel (docs/training.md).
    """
    from backdrop import training

    options = _train_options(ctx, settings)
    if config_file is not None:
        if resume:
            raise InputError("--config and --resume contradict each other: --resume reads the settings of --out's run")
        if config_file.name != "config.json" or not config_file.is_file():
            raise InputError(f"--config needs the config.json file of a run, but got {config_file}")
    if resume and out is None:
        raise InputError("--resume needs --out, the run directory to continue")
    saved = (training.read_config(out) if resume else
             training.TrainConfig.from_json(config_file) if config_file is not None else None)
    config = training.TrainConfig.from_options(saved, **options)
    loggers = [] if tensorboard is None else [training.TensorBoardLogger(tensorboard)]
    distributed = training.init_distributed(config.device)
    rank = training.dist.get_rank() if distributed else 0
    out = out or training.default_run_dir()
    bar = progress_bar(unit="step", desc=config.method, disable=rank != 0, dynamic_ncols=True)
    to_go_on = f"to go on: msgp train --out {out} --resume"
    try:
        summary = _train_with_ctrl_c(training, config, out, resume, _train_progress(bar, out, config), loggers, to_go_on)
    except training.Interrupted as err:
        bar.close()
        click.echo(f"interrupted: {as_flags(str(err), ctx.command)}; {to_go_on}", err=True)
        raise SystemExit(130)
    except training.TrainingError as err:  # the run itself failed, not its input: exit code 1
        raise click.ClickException(as_flags(str(err), ctx.command)) from None
    finally:
        bar.close()
        if distributed:
            training.dist.destroy_process_group()
    if rank == 0:
        click.echo(_accuracy_table(summary["test_accuracy"], summary["oracle_accuracy"], summary["chance"]))
        for s, verdict in enumerate(summary["learned"]):
            if not verdict["learned"]:
                click.echo(f"warning: scale {s} has not learned: {verdict['reason']}", err=True)
        click.echo(f"wrote {out}")


def _train_progress(bar, out: Path, config):
    """`msgp train`'s progress callback: the run's first line, the step bar, each scored epoch."""
    def progress(event, info):
        if event == "start":
            bar.reset(total=info["total_steps"])
            bar.update(info["done_steps"])
            bar.write(f"{out}: {info['n_train']} train / {info['n_test']} test images ({info['n_classes']} classes), "
                      f"{config.method} on {info['device']} x{info['world_size']}, heads at stages "
                      f"{info['head_stages']}, {_count(info['epochs'], 'epoch')} of {_count(info['steps_per_epoch'], 'step')}")
        elif event == "step":
            bar.set_postfix({"loss": f"{info['loss']:.3f}", "img/s": f"{info['images_per_s']:.0f}"}, refresh=False)
            bar.update()
        elif info["test_accuracy"] is not None:
            bar.write(f"epoch {info['epoch']}: test accuracy joint {info['test_accuracy']['joint']:.3f}, scales "
                      + ", ".join(f"{a:.3f}" for a in info["test_accuracy"]["scales"]))
    return progress


def _train_with_ctrl_c(training, config, out: Path, resume: bool, progress, loggers, to_go_on: str):
    """``training.train``, where the first Ctrl-C finishes the step, saves a checkpoint and raises
    ``Interrupted``, and a second one stops at once."""
    stop = []

    def on_sigint(signum, frame):
        stop.append(True)
        signal.signal(signal.SIGINT, at_once)

    with _interruptible(f"stopped at once; the checkpoint saved after each epoch in {out} resumes the run; {to_go_on}",
                        at_once=True):
        at_once = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, on_sigint)
        return training.train(config, out, resume=resume, progress=progress, should_stop=lambda: bool(stop),
                              loggers=loggers)


def _names_description(data: Path) -> bool:
    """Whether DATA names a dataset description (a spec .json, or a preset: a bare name that is no
    file) rather than an msgp file."""
    return data.suffix == ".json" or not (data.suffix or data.exists())


def _train_source(data: Path, generate: int | None, given: bool):
    """What `msgp train` reads: DATA's path, or the description (a DatasetSpec) whose samples it
    generates: a preset or spec .json, or with --generate N the file's description (default:
    `msgp generate`'s) with n = N."""
    if generate is not None and generate < 1:
        raise InputError(f"--generate must be a positive number of samples, but got {generate}")
    if _names_description(data):
        return load_preset(str(data), n=generate)
    if generate is None:
        return data
    return io.read_spec(data).replace(n=generate) if given else DatasetSpec.default(n=generate)


def _accuracy_table(network, oracle_accuracy, chance) -> str:
    rows = [("joint", network["joint"], oracle_accuracy["joint"], chance["joint"])]
    rows += [(f"scale {s}", a, o, c) for s, (a, o, c) in
             enumerate(zip(network["scales"], oracle_accuracy["scales"], chance["scales"]))]
    lines = [f"{'test accuracy':<14}{'network':>9}{'oracle':>9}{'chance':>9}"]
    lines += [f"{name:<14}{a:>9.3f}{o:>9.3f}{c:>9.3f}" for name, a, o, c in rows]
    return "\n".join(lines)


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path), required=False)
@click.option("--n", "n", type=int, help="Class-balanced samples drawn from DATA (default: the run's --n-test).")
@click.option("--device", type=RegistryChoice(_training_choices("DEVICES")), default="auto", show_default=True,
              help="Where the network runs; auto: cuda when there is one.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def evaluate(run_dir, data, n, device, as_json):
    """Per-scale and joint accuracy of a trained run beside the oracle, with confusion matrices.

    DATA defaults to the run's own test samples; any file with the training data's parameters
    (another seed or n) is accepted, others are refused. DATA may also be a preset or a spec .json
    with another seed: its samples are then generated as they are read, with no file.
    """
    from backdrop import training

    source = load_preset(str(data)).to_dict() if data is not None and _names_description(data) else data
    result = training.evaluate(run_dir, source, n=n, device=device)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    net, orc = result["network"], result["oracle"]
    click.echo(f"{run_dir} (epoch {result['epoch']}) on {result['n']} samples of {result['data']}")
    click.echo(_accuracy_table(
        {"joint": net["joint"]["accuracy"], "scales": [s["accuracy"] for s in net["scales"]]},
        {"joint": orc["joint"]["accuracy"], "scales": [s["accuracy"] for s in orc["scales"]]},
        {"joint": net["joint"]["chance"], "scales": [s["chance"] for s in net["scales"]]}))
    for s, (a, o) in enumerate(zip(net["scales"], orc["scales"])):
        lengths = ", ".join(f"{v:g}" for v in a["length_scales"])
        click.echo(f"scale {s} ({lengths} px) confusion, rows true, columns predicted: "
                   f"network {a['confusion']}, oracle {o['confusion']}")
    click.echo("joint confusion (network), rows true class, columns predicted:")
    for row in net["joint_confusion"]:
        click.echo("  " + " ".join(f"{v:4d}" for v in row))


@main.command()
@click.argument("shards", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="The merged file.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def merge(shards, output, overwrite):
    """Join the shards of one dataset (msgp generate --shard I/N) into one file, without copying.

    The merged file maps the shards by paths relative to its own directory: move them together.
    """
    io.merge(shards, output, overwrite=overwrite)
    report = io.inspect(output)
    click.echo(f"merged {len(shards)} shards into {output}: {report['n_written']} samples, "
               f"integrity {'ok' if report['ok'] else '; '.join(report['problems'])}")
    if not report["ok"]:
        raise SystemExit(1)


@main.command()
@click.option("--plan", type=RegistryChoice(_plan_names), default="paper128", show_default=True,
              help="paper128: the paper's two-scale statistics at 128²; "
              "paper128-lean: the same with fewer backdrop settings and sizes up to 32 per class, for 2 CPU "
              "cores; default3: the default three-scale dataset; paper: paper-2scale at 1024², for a GPU; smoke: "
              "four runs of seconds, to check the pipeline; f1, auc: backdrop for a loss that does not decompose "
              "over samples (soft F1, pairwise AUC) against its exact ceiling and the baselines.")
@click.option("--jobs", type=int, help="Runs trained at once, one thread each (default: the CPUs this process may use on CPU, 1 on a GPU).")
@click.option("--out", type=click.Path(path_type=Path), help="Output directory (default experiments/<plan>).")
@click.option("--report", "report_only", is_flag=True,
              help="Train nothing: write the tables and figures of the runs finished so far.")
@click.option("--dry-run", is_flag=True, help="Train nothing: print the plan (runs, epochs, training images) and its "
              "estimated time on this machine, from a few seconds of timed steps.")
@click.option("--method", "methods", multiple=True, metavar="FILE.py:FUNCTION",
              help="Add a method from your own file (or module:function), marked @network or @fitted "
              "(docs/methods.md); repeatable.")
@click.option("--shard", metavar="I/N", help="Train shard I of the plan's runs dealt by estimated cost to N shards "
              "(0 <= I < N; one shard per task of a cluster job array, all with the same --out), then write the "
              "tables of every run finished in --out so far.")
def experiment(plan, jobs, out, report_only, dry_run, methods, shard):
    """Backdrop at its best per size against the full gradient, augmentation and crops, by
    training-set size, as a fraction of the oracle's accuracy, with paired 95% intervals; beside
    two anchors that are not networks (whittle, scattering) and the methods --method adds from
    your own files.

    Each seed trains on its own generated images; backdrop settings are chosen per size on a
    validation set and every table reports a separate report set. Writes results.csv/.md,
    comparisons.csv/.md, efficiency.png, input_gradient.png and, with backdrop methods,
    sweep.md, choices.csv and sweep.png (--plan f1 and auc: results.csv/.md, comparisons.csv/.md
    and curves.png). Rerun after an interruption: finished runs are kept.
    """
    from backdrop import runner, training

    if dry_run and report_only:
        raise InputError("--dry-run and --report contradict each other; pass one")
    asked = runner.request(plan, out, jobs=jobs, shard=shard, methods=methods, report_only=report_only)
    if dry_run:
        click.echo(asked.dry_run(), nl=False)
        return
    bar = None

    def progress(event, info):
        nonlocal bar
        if event == "plan":
            click.echo(info["line"])
            bar = progress_bar(total=info["runs"], initial=info["runs"] - info["to_train"], unit="run", desc="experiment")
        elif event == "done":
            if not info.get("skipped"):
                bar.write(info["line"])
                bar.update()
        elif info["line"] is not None:
            # Through the bar once it is there, so that the line does not break it.
            (bar.write if bar is not None else click.echo)(info["line"])

    try:
        with _interruptible(f"the finished runs are kept in {asked.out}; rerun the same command to train the rest",
                            at_once=True) as check:
            written = asked.run(progress=_checked(check, progress))
    except training.TrainingError as err:  # a run itself failed, not its input: exit code 1
        raise click.ClickException(as_flags(str(err), click.get_current_context().command)) from None
    finally:
        if bar is not None:
            bar.close()
    click.echo("wrote " + ", ".join(str(p) for p in written.values()))


if __name__ == "__main__":
    main()
