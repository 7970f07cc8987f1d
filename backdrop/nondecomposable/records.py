"""A run's record, ``runs/<name>/result.json`` (:func:`backdrop.runner.read_result`), read back
for a plan: refused when it was trained with other settings than the plan's (:func:`recorded_result`)
or with another scheme of random streams than the others' or this version's (:func:`check_streams`:
records without ``streams`` were drawn with scheme 1, :mod:`.training`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import runner
from .plans import NondecomposableError
from .training import STREAMS, LossRun


def recorded_result(out: Path, run: LossRun) -> dict[str, Any] | None:
    """The recorded result of ``run`` under ``out``, ``None`` when it has not finished (or its
    ``result.json`` cannot be read, so the run is trained again, as the network experiment does),
    or a :class:`NondecomposableError` when the recorded run had other settings."""
    path = out / "runs" / run.name / "result.json"
    result = runner.read_result(path.parent)
    if result is None:
        return None
    if result.get("settings") != run.settings():
        raise NondecomposableError(f"{path} was trained with other settings than this plan's; move it away or "
                                   "choose another `out`")
    return result


def check_streams(out: Path, recorded: dict[LossRun, dict[str, Any] | None], report_only: bool) -> None:
    """Refuse to mix runs of two schemes of random streams: a directory of runs recorded with the
    earlier scheme (no ``streams`` in their records) takes no new run, and its tables are made of
    its runs alone (``report_only``), never of both schemes."""
    schemes = {result.get("streams", 1) for result in recorded.values() if result is not None}
    if len(schemes) > 1:
        raise NondecomposableError(f"{out} holds runs of two schemes of random streams ({', '.join(map(str, sorted(schemes)))}), "
                                   "whose numbers are not to be compared; remove one scheme's runs")
    if not report_only and schemes - {STREAMS}:
        raise NondecomposableError(
            f"{out} holds runs drawn with the earlier random streams (scheme {min(schemes)}: one global seed a run, "
            f"so that seed s's masks were seed s + 1's order); this version draws scheme {STREAMS}, whose runs are "
            "not to be mixed with them: rebuild their tables with `report_only=True`, or choose another `out`")
