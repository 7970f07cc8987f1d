"""Training and evaluating :class:`~backdrop.models.MultiScaleNet` on an msgp dataset.

One function trains (:func:`train`), one evaluates a finished run (:func:`evaluate`). Both work in
one process or under ``torch.distributed`` (DistributedDataParallel with a DistributedSampler;
rank 0 alone writes files). They never print: progress goes to a callback.

Where things are: :mod:`.config` (the settings and the errors), :mod:`.loop` (the training loop
and its set-up), :mod:`.data` (the samples in memory, crops, symmetries), :mod:`.evaluation`
(scoring beside the oracle), :mod:`.checkpoints`, :mod:`.outputs` (the run directory's other
files), :mod:`.loggers` (TensorBoard, CSV, or a logger of one's own) and :mod:`.devices` (device,
precision, distributed helpers).
"""
import torch.distributed as dist

from msgp.dataset import SplitError
from msgp.io import MSGPError
from msgp.spec import SpecError

from .checkpoints import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, load_checkpoint
from .config import (DEFAULT_EPOCHS, DEFAULT_SIZE, DEVICES, PRECISIONS, RESUMABLE, CheckpointError, ConfigError, IncompatibleDataError,
                     Interrupted, Progress, TrainConfig, TrainingError, check_config, default_epochs, default_run_dir,
                     read_config, resolve_epochs, resolve_sizes)
from .data import apply_symmetries, check_compatible, draw_symmetries, take_crops
from .devices import init_distributed, precision_context, resolve_device
from .evaluation import calibrate, evaluate
from .loggers import CSVLogger, Logger, LoggerError, TensorBoardLogger, scalars
from .loop import (apply_gradients, build_model, crops_per_image, end_epoch, forward_losses, learning_rate,
                   make_optimizer, save_checkpoint, train, train_one_epoch, transform_batch)
from .outputs import plot_curves, read_metrics

# The errors that mean bad input (settings, data, run directories, loggers), each with a one-line message.
INPUT_ERRORS = (ConfigError, CheckpointError, IncompatibleDataError, SplitError, SpecError, MSGPError, LoggerError)

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CSVLogger", "DEFAULT_EPOCHS", "DEFAULT_SIZE", "DEVICES", "PRECISIONS", "RESUMABLE", "CheckpointError",
           "ConfigError", "Logger", "LoggerError", "TensorBoardLogger",
           "INPUT_ERRORS", "IncompatibleDataError", "Interrupted", "Progress", "TrainConfig", "TrainingError", "apply_gradients",
           "apply_symmetries", "build_model", "calibrate", "check_compatible", "check_config", "crops_per_image", "default_epochs", "default_run_dir", "dist",
           "draw_symmetries", "end_epoch", "evaluate", "forward_losses", "init_distributed", "learning_rate",
           "load_checkpoint", "make_optimizer", "plot_curves", "precision_context", "read_config", "read_metrics",
           "resolve_device", "resolve_epochs", "resolve_sizes", "save_checkpoint", "scalars", "take_crops", "train", "train_one_epoch", "transform_batch"]
