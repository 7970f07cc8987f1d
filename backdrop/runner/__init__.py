"""The experiment runner that both families of experiments share (:mod:`backdrop.experiment`, the
networks against the oracle; :mod:`backdrop.nondecomposable`, losses that do not decompose over
samples), and the one registry of their named plans.

A family gives the runner its plans and what is its own (the runs a plan makes, training one, the
tables); the runner holds what both do alike:

* the registry: :func:`plans` (every named plan, ``msgp experiment --plan``'s choices),
  :func:`plan` (one by name), :func:`family_of`, each family a :class:`Family`;
* the entry points: :func:`run` and :func:`dry_run` (``msgp experiment`` and its ``--dry-run``),
  which check a request (:func:`request`: the output directory, the shard, the methods, the jobs,
  :func:`default_jobs` from the CPUs this process may use);
* running the runs (:func:`execute_all`: in this process, or ``jobs`` processes of one thread),
  their records (:func:`read_result`, :func:`write_result`: ``runs/<name>/result.json``) and
  shards (:func:`deal`: runs dealt by cost);
* the statistics of the comparisons (:func:`paired_difference`, :func:`holm`,
  :func:`holm_effects`) and the formats of the tables (:func:`write_csv`, :func:`write_text`,
  :func:`mean_std`, :func:`format_interval`, :func:`duration`).

Examples
--------
>>> from backdrop import runner
>>> "smoke" in runner.plans() and "f1" in runner.plans()
True
"""
from .families import FAMILIES, Family, RunnerError, families, family_of, plan, plans, with_methods
from .launch import Request, check_jobs, check_shard, cpu_jobs, default_jobs, dry_run, request, run
from .pool import execute_all
from .records import read_result, write_result
from .shards import deal
from .statistics import holm, holm_effects, paired_difference
from .tables import duration, format_interval, mean_std, write_csv, write_text

__all__ = ["FAMILIES", "Family", "Request", "RunnerError", "check_jobs", "check_shard", "cpu_jobs", "deal",
           "default_jobs", "dry_run", "duration", "execute_all", "families", "family_of", "format_interval", "holm",
           "holm_effects", "mean_std", "paired_difference", "plan", "plans", "read_result", "request", "run",
           "with_methods", "write_csv", "write_result", "write_text"]
