"""matplotlib, when the ``plot`` extra is installed: every picture msgp draws starts here."""
from __future__ import annotations

from .errors import PlotUnavailable

__all__ = ["PlotUnavailable", "picture_formats", "pyplot"]


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (files only, no display needed)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable("pictures need matplotlib: pip install 'msgp[plot]'") from None
    return plt


def picture_formats() -> tuple[str, ...]:
    """The file suffixes (without the dot) of the picture formats matplotlib writes: png, pdf, svg, ..."""
    pyplot()
    from matplotlib.backend_bases import FigureCanvasBase

    return tuple(sorted(FigureCanvasBase.get_supported_filetypes()))
