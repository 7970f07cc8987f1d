"""Training and evaluating :class:`~backdrop.models.MultiScaleNet` on an msgp dataset.

One function trains (:func:`train`), one continues a saved run with its settings (:func:`resume`),
one scores a run beside the oracle (:func:`evaluate`). They work in one process or under
``torch.distributed`` (DistributedDataParallel with a DistributedSampler; rank 0 alone writes
files; ``torchrun ... -m backdrop.training.launch`` starts such a run from a settings file). They
never print: progress goes to a callback. Every error a caller can cause is an
:class:`msgp.MSGPError` with a one-line message; :class:`Interrupted` (a requested stop) is not.

Where things are: :mod:`.config` (the settings, :class:`TrainConfig`, and the errors), :mod:`.loop`
(the training loop and its set-up), :mod:`.data` (the samples in memory, crops, symmetries),
:mod:`.evaluation` (scoring beside the oracle), :mod:`.checkpoints`, :mod:`.outputs` (the run
directory's other files), :mod:`.loggers` (TensorBoard, CSV, or a logger of one's own),
:mod:`.devices` (device, precision, distributed helpers) and :mod:`.launch` (the entry point for
``torchrun``).
"""
import torch.distributed as dist

from .checkpoints import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, load_checkpoint, rebuild_model
from .config import (DEFAULT_EPOCHS, DEFAULT_SIZE, DEVICES, MASK_SETTINGS, PRECISIONS, RESUMABLE, CheckpointError,
                     ConfigError, ConfigTypeError, IncompatibleDataError, Interrupted, Progress, TrainConfig,
                     TrainingError, check_config, default_epochs, default_run_dir, read_config, resolve_epochs,
                     resolve_sizes)
from .data import (Samples, apply_symmetries, check_compatible, draw_symmetries, load_samples, open_data, run_subsets,
                   take_crops)
from .devices import init_distributed, precision_context, resolve_device
from .evaluation import calibrate, evaluate, learned, oracle_scores, other_samples
from .loggers import CSVLogger, Logger, LoggerError, TensorBoardLogger, scalars
from .loop import (apply_gradients, build_model, crops_per_image, end_epoch, forward_losses, learning_rate,
                   make_optimizer, resume, save_checkpoint, stream_seed, train, train_one_epoch, transform_batch)
from .outputs import plot_curves, read_metrics

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CSVLogger", "DEFAULT_EPOCHS", "DEFAULT_SIZE", "DEVICES",
           "MASK_SETTINGS", "PRECISIONS", "RESUMABLE", "CheckpointError", "ConfigError", "ConfigTypeError",
           "IncompatibleDataError", "Interrupted", "Logger", "LoggerError", "Progress", "Samples", "TensorBoardLogger",
           "TrainConfig", "TrainingError", "apply_gradients", "apply_symmetries", "build_model", "calibrate",
           "check_compatible", "check_config", "crops_per_image", "default_epochs", "default_run_dir", "dist",
           "draw_symmetries", "end_epoch", "evaluate", "forward_losses", "init_distributed", "learned",
           "learning_rate", "load_checkpoint", "load_samples", "make_optimizer", "open_data", "oracle_scores",
           "other_samples", "plot_curves", "precision_context", "read_config", "read_metrics", "rebuild_model",
           "resolve_device", "resolve_epochs", "resolve_sizes", "resume", "run_subsets", "save_checkpoint", "scalars", "stream_seed",
           "take_crops", "train", "train_one_epoch", "transform_batch"]
