"""The book's figure style, applied by an explicit call (never on import)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from cycler import cycler

# tableau-colorblind10's first six colours, each paired with its own line style so
# that curves stay distinguishable in greyscale print and for readers who cannot tell
# them apart.
COLORS = ["#006BA4", "#FF800E", "#ABABAB", "#595959", "#5F9ED1", "#C85200"]
LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1))]


def use_book_style() -> None:
    """Opaque white figures (readable on the site's dark theme too).

    Colours from a colour-blind-safe cycle, each with its own line style.
    """
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


def tile_digits(x, cols: int):
    """A batch (N, 1, H, W), clipped to [-1, 1], as one (rows*H, cols*W) numpy array.

    Rows of `cols` images; the last row is padded with black (-1).
    """
    n, _, h, w = x.shape
    rows = -(-n // cols)
    grid = x.new_full((rows * cols, h, w), -1.0, dtype=torch.float32, device="cpu")
    grid[:n] = x[:, 0].float().cpu().clamp(-1, 1)
    return (
        grid.reshape(rows, cols, h, w)
        .permute(0, 2, 1, 3)
        .reshape(rows * h, cols * w)
        .numpy()
    )


def show_digits(ax: plt.Axes, x, title: str = "", cols: int = 8) -> None:
    """A batch of images (N, 1, H, W) in [-1, 1] as one grid on ax.

    Rows of `cols` images, the last padded with black.
    """
    ax.imshow(tile_digits(x, cols), cmap="gray", vmin=-1, vmax=1)
    ax.set(xticks=[], yticks=[], title=title)
    ax.grid(False)
