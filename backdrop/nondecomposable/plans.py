"""The plans: which problems, how much data, how many steps and seeds, and the runs they make
(:meth:`Setup.runs`, the one enumeration of them), and the family's named plans (:data:`PLANS`,
which :func:`backdrop.runner.plans` lists with the network plans for ``msgp experiment --plan``)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..runner import RunnerError
from .problems import GaussianProblem, MSGPProblem
from .training import LossRun

PROBS = (0.5, 0.75, 0.875, 0.95)


class NondecomposableError(RunnerError):
    """A plan or an output directory that cannot be run or reported, described in one line. A
    :class:`msgp.MSGPError` and a ``ValueError``."""


@dataclass(frozen=True)
class Setup:
    """One problem's part of a plan.

    ``batch`` is the large batch; the small batches are its kept counts ``round(batch (1 - p))``.
    The ceilings are computed on ``2 ceiling_n`` samples per class. Training samples of seed ``s``
    come from the problem's stream ``100 + s``, the test samples (shared by every seed) from 0.
    """

    problem: GaussianProblem | MSGPProblem
    n_train: int
    n_test: int
    batch: int
    steps: int
    seeds: tuple[int, ...]
    lr: float = 3e-3
    checkpoints: int = 10
    ceiling_n: int = 500_000

    def kept(self, p: float) -> int:
        return max(1, round(self.batch * (1 - p)))

    def runs(self, loss: str, probs: tuple[float, ...], seeds: tuple[int, ...] | None = None) -> list[LossRun]:
        """The problem's runs, seed by seed (of ``seeds``, default every seed of the setup): the
        full gradient, backdrop at each of ``probs``, the small batch of each one's kept count, and
        cross-entropy."""
        common = dict(problem=self.problem.name, loss=loss, steps=self.steps, lr=self.lr, n_train=self.n_train,
                      n_test=self.n_test, checkpoints=self.checkpoints)
        runs = []
        for seed in self.seeds if seeds is None else seeds:
            runs.append(LossRun(method="full", seed=seed, batch=self.batch, **common))
            runs += [LossRun(method="backdrop", seed=seed, batch=self.batch, p=p, **common) for p in probs]
            runs += [LossRun(method="small", seed=seed, batch=self.kept(p), **common) for p in probs]
            runs.append(LossRun(method="ce", seed=seed, batch=self.batch, **common))
        return runs


TRAIN_STREAM, TEST_STREAM = 100, 0


@dataclass(frozen=True)
class Plan:
    """A plan: the loss trained and scored (``f1`` or ``auc``), its problems and the backdrop
    probabilities (each with a small-batch run of its kept count)."""

    name: str
    loss: str
    setups: tuple[Setup, ...]
    probs: tuple[float, ...] = PROBS
    notes: dict = field(default_factory=dict, compare=False)

    def runs(self) -> list[LossRun]:
        """Every run of the plan, problem by problem (:meth:`Setup.runs`)."""
        return [run for setup in self.setups for run in setup.runs(self.loss, self.probs)]

    def setup(self, problem: str) -> Setup:
        return next(s for s in self.setups if s.problem.name == problem)


def _setups(gaussian_seeds: int, msgp_seeds: int) -> tuple[Setup, ...]:
    return (Setup(GaussianProblem(), n_train=65_536, n_test=50_000, batch=1024, steps=4000,
                  seeds=tuple(range(gaussian_seeds))),
            Setup(MSGPProblem(), n_train=8192, n_test=20_000, batch=1024, steps=2000, seeds=tuple(range(msgp_seeds)),
                  ceiling_n=100_000))


def f1_plan() -> Plan:
    # 20 seeds: at 10, intervals that decide the verdict straddled zero on both problems.
    return Plan("f1", "f1", _setups(20, 20))


def auc_plan() -> Plan:
    return Plan("auc", "auc", _setups(10, 10))


def tiny_plan(loss: str = "f1", seeds: int = 2) -> Plan:
    """Seconds in all: the Gaussian problem with a few hundred samples and steps, one probability."""
    setup = Setup(GaussianProblem(features=8, n_shift=2, n_stretch=1, prior=0.2), n_train=512, n_test=2000,
                  batch=128, steps=20, seeds=tuple(range(seeds)), checkpoints=4, ceiling_n=20_000)
    return Plan(f"tiny-{loss}", loss, (setup,), probs=(0.75,))


# The non-decomposable family's named plans (``msgp experiment --plan``, :func:`backdrop.runner.plans`).
PLANS = {"f1": f1_plan, "auc": auc_plan}
