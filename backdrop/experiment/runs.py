"""A plan's runs: :class:`Run` (one training run, its directory name and its trainer's settings)
and the one enumeration of the runs a plan makes (:func:`plan_runs`: the backdrop sweep,
:func:`sweep_runs`, then the other methods, :func:`main_runs`)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .. import training
from ..models import MethodError
from .plans import BACKDROP_METHODS, ExperimentPlan, Masks


@dataclass(frozen=True)
class Run:
    """One training run of the plan: its directory name and its training settings."""

    name: str
    method: str
    per_class: int
    seed: int
    masks: Masks | None = None  # the backdrop setting, for methods with backdrop

    def config(self, plan: ExperimentPlan, validation_path: Path) -> training.TrainConfig:
        """The trainer's settings: the seed's own training samples (generated, so the config names
        them exactly), scored after the last epoch on the whole validation file; for a network
        method from the user's file, with its own settings and its record."""
        n_train = self.per_class * plan.spec.n_classes
        setting = self.masks
        topology = "series" if self.method == "series-nomask" else setting.topology if setting else "heads"
        config = training.TrainConfig(
            data=plan.train_spec(self.seed, self.per_class), test_data=str(validation_path), n_train=n_train,
            n_test=plan.n_validation, backdrop=setting is not None,
            mask_prob=setting.probs if setting else 0.5, mask_block=setting.blocks if setting else 1,
            mask_scope=setting.scope if setting else "sample",
            topology=topology, augment=self.method.startswith("augment"),
            crop=plan.crop if self.method == "crop" else None, epochs=plan.epochs(n_train, self.method),
            batch_size=min(plan.batch_size, n_train), lr=plan.lr, device=plan.device, seed=self.seed,
            width=plan.width, eval_every=0)
        return _with_method_settings(plan, self.method, config)


def _with_method_settings(plan: ExperimentPlan, name: str, config: training.TrainConfig) -> training.TrainConfig:
    """``config`` for a run of method ``name``: a network method's own settings and its record."""
    method = next((m for m in plan.extra if m.name == name), None)
    if method is None or method.kind != "network":
        return config
    try:
        return dataclasses.replace(config, **method.settings, network=method.record())
    except training.ConfigError as err:
        raise MethodError(f"{method.source}'s settings: {err}") from None


def make_run(method: str, per_class: int, seed: int, setting: Masks | None = None) -> Run:
    """The run of ``method`` at ``per_class`` with seed ``seed`` (and backdrop setting ``setting``),
    named ``<method>[-<setting>]-n<per_class>-s<seed>`` as its directory is."""
    tag = method if setting is None else f"{method}-{setting.tag}"
    return Run(f"{tag}-n{per_class}-s{seed}", method, per_class, seed, setting)


def main_runs(plan: ExperimentPlan) -> list[Run]:
    """Every method other than the backdrop methods at every size and seed."""
    return [make_run(m, n, s, (plan.settings(m) or (None,))[0]) for n in plan.sizes for m in plan.methods
            if m not in BACKDROP_METHODS for s in plan.seeds_at(n)]


def sweep_runs(plan: ExperimentPlan) -> list[Run]:
    """Every setting of every backdrop method of the plan at every size and seed, to choose from."""
    return [make_run(m, n, s, setting) for n in plan.sizes for m in plan.methods if m in BACKDROP_METHODS
            for setting in plan.settings(m) for s in plan.seeds_at(n)]


def plan_runs(plan: ExperimentPlan) -> list[Run]:
    """Every run of the plan once, in the one order every part of the experiment lists them in:
    the backdrop sweep (:func:`sweep_runs`), then the other methods (:func:`main_runs`)."""
    return sweep_runs(plan) + main_runs(plan)


def trained_images(config: training.TrainConfig) -> int:
    """Images a network run trains on: whole batches, every epoch."""
    return config.epochs * (config.n_train // config.batch_size) * config.batch_size
