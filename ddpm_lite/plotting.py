"""The book's figure style, applied by an explicit call (never on import)."""
from __future__ import annotations

import matplotlib.pyplot as plt
from cycler import cycler

# tableau-colorblind10's first six colours, each paired with its own line style so that
# curves stay distinguishable in greyscale print and for readers who cannot tell them apart.
COLORS = ["#006BA4", "#FF800E", "#ABABAB", "#595959", "#5F9ED1", "#C85200"]
LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1))]


def use_book_style() -> None:
    """Opaque white figures (readable on the site's dark theme too), a colour-blind-safe cycle."""
    plt.rcParams.update(
        {
            "figure.facecolor": "white",
            "axes.facecolor": "white",
            "savefig.facecolor": "white",
            "text.color": "black",
            "axes.labelcolor": "black",
            "xtick.color": "black",
            "ytick.color": "black",
            "axes.edgecolor": "#333333",
            "axes.prop_cycle": cycler(color=COLORS) + cycler(linestyle=LINESTYLES),
            "axes.grid": True,
            "grid.alpha": 0.3,
            "image.cmap": "cividis",
            "figure.dpi": 96,
            "figure.figsize": (6.4, 3.6),
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
        }
    )
