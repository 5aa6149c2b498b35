"""One house style for figures, and saving each figure next to the run's results."""

from __future__ import annotations

from pathlib import Path

import matplotlib

__all__ = ["use_house_style", "save_figure", "PALETTE"]

# colour-blind-safe (Okabe–Ito)
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def use_house_style() -> None:
    """Set matplotlib and seaborn defaults once per notebook."""
    import seaborn as sns

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
