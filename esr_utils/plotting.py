"""One house style for figures, and saving each figure next to the run's results."""

from __future__ import annotations

import numbers
from pathlib import Path

import matplotlib

__all__ = ["use_house_style", "save_figure", "format_number", "PALETTE"]

# colour-blind-safe (Okabe–Ito)
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def format_number(value) -> str:
    """How a table shows a number: three significant digits (whole numbers from 100 on), never a
    row of zeros."""
    if isinstance(value, numbers.Integral) or not isinstance(value, numbers.Real):
        return str(value)
    value = float(value)
    if value != value:
        return "–"  # NaN
    size = abs(value)
    if size == 0 or size >= 100:
        return f"{value:,.0f}"
    if size >= 0.001:
        return f"{value:.3g}"  # three significant digits, no trailing zeros
    return f"{value:.1e}"


def use_house_style() -> None:
    """Set matplotlib, seaborn and pandas table defaults once per notebook."""
    import pandas as pd
    import seaborn as sns

    # tables print numbers rounded (format_number), for DataFrames and Stylers alike
    pd.set_option("display.float_format", format_number)
    pd.set_option("styler.format.formatter", format_number)

    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)
    matplotlib.rcParams.update({
        "figure.figsize": (7.0, 4.0),
        "figure.dpi": 110,
        "savefig.dpi": 150,
        "savefig.bbox": "tight",
        "axes.titleweight": "bold",
        "axes.spines.top": False,
        "axes.spines.right": False,
    })


def save_figure(fig, cfg, name: str) -> Path:
    """Write `<results_dir>/figures/<name>.png` and `.svg`; returns the PNG path.

    The figure is left open so the notebook still displays it inline.
    """
    folder = Path(cfg.results_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    png = folder / f"{name}.png"
    fig.savefig(png)
    fig.savefig(folder / f"{name}.svg")
    return png
