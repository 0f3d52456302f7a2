"""Diagrams drawn by code: rebuilt with the book, they cannot drift from the package.

`chain_diagram`: the graphical model of the forward chain q and the reverse chain
p_theta. `unet_diagram`: the U-Net's stages as boxes with the tensor shapes a forward
pass produced, the skip connections and where the time embedding enters (display only,
like `widgets`).
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

Shape = tuple[int, ...]


def _arrow(ax, start, end, color="black", style="-|>", linestyle="-", rad=0.0, lw=1.2):
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle=style,
            mutation_scale=12,
            color=color,
            linestyle=linestyle,
            linewidth=lw,
            connectionstyle=f"arc3,rad={rad}",
            shrinkA=14,
            shrinkB=14,
        )
    )


def chain_diagram() -> plt.Figure:
    """x_0 -> x_1 -> ... -> x_T under q (above), and back under p_theta (below)."""
    labels = ["$x_0$", "$x_1$", r"$\cdots$", "$x_{t-1}$", "$x_t$", r"$\cdots$", "$x_T$"]
    fig, ax = plt.subplots(figsize=(10, 2.8))
    for i, label in enumerate(labels):
        if label != r"$\cdots$":
            ax.add_patch(
                plt.Circle(
                    (i, 0), 0.28, facecolor="white", edgecolor="black", linewidth=1.2
                )
            )
        ax.text(i, 0, label, ha="center", va="center", fontsize=13)
    for i in range(len(labels) - 1):
        _arrow(ax, (i, 0.05), (i + 1, 0.05), color="#006BA4", rad=-0.45)
        _arrow(
            ax, (i + 1, -0.05), (i, -0.05), color="#C85200", rad=-0.45, linestyle="--"
        )
    ax.text(
        3.5,
        0.72,
        r"forward: $q(x_t \mid x_{t-1}) = "
        r"\mathcal{N}(\sqrt{1-\beta_t}\,x_{t-1},\ \beta_t \mathbf{I})$, fixed",
        ha="center",
        color="#006BA4",
        fontsize=11,
    )
    ax.text(
        3.5,
        -0.82,
        r"reverse: $p_\theta(x_{t-1} \mid x_t) = "
        r"\mathcal{N}(\mu_\theta(x_t, t),\ \sigma_t^2 \mathbf{I})$, learned",
        ha="center",
        color="#C85200",
        fontsize=11,
    )
    ax.text(6, -0.45, r"$\mathcal{N}(0, \mathbf{I})$", ha="center", fontsize=9)
    ax.text(0, -0.45, "data", ha="center", fontsize=9)
    ax.set(xlim=(-0.6, len(labels) - 0.4), ylim=(-1.05, 1.0), aspect="equal")
    ax.axis("off")
    return fig


def _box(ax, x, y, text, color, width=2.3, height=0.62):
    ax.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - height / 2),
            width,
            height,
            boxstyle="round,pad=0.02",
            facecolor=color,
            edgecolor="#333333",
            linewidth=0.8,
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=7.5)


def _shape(shape: Shape) -> str:
    return " x ".join(str(s) for s in shape[1:])  # without the batch dimension


def unet_diagram(
    rows: Sequence[tuple[str, Shape, Shape]],
) -> tuple[plt.Figure, list[tuple[str, str]]]:
    """The U-Net as measured by a forward pass.

    rows: (stage, input shape, output shape) in call order. Stage names start with
    "conv_in", "down", "middle", "up" or "conv_out"; "down" stages and conv_in push a
    skip connection, and each "up" ResBlock pops one (the concatenation in
    `UNet.forward`). Returns the figure and the (down stage, up stage) pairs it drew as
    skips.
    """
    left = [r for r in rows if r[0].startswith(("conv_in", "down"))]
    middle = [r for r in rows if r[0].startswith("middle")]
    right = [r for r in rows if r[0].startswith(("up", "conv_out"))]
    height = max(len(left), len(right))
    fig, ax = plt.subplots(figsize=(11, 0.55 * height + 2.2))
    pos = {}
    colors = {
        "resample": "#DDDDDD",
        "attention": "#FFD8B0",
        "ResBlock": "#CFE3F3",
        "conv": "#FFFFFF",
    }

    def color_of(name):
        return (
            colors["resample"]
            if "resample" in name
            else colors["attention"]
            if "attention" in name
            else colors["ResBlock"]
            if "ResBlock" in name
            else colors["conv"]
        )

    for i, (name, _, out) in enumerate(left):
        y = -i * height / len(left)
        pos[name] = (0.0, y)
        _box(ax, 0.0, y, f"{name}\n{_shape(out)}", color_of(name))
    for i, (name, _, out) in enumerate(right):
        y = -(len(right) - 1 - i) * height / len(right)
        pos[name] = (7.0, y)
        _box(ax, 7.0, y, f"{name}\n{_shape(out)}", color_of(name))
    bottom = -height - 0.3
    for name, _, out in middle:
        pos[name] = (3.5, bottom)
        _box(ax, 3.5, bottom, f"{name}\n{_shape(out)}", colors["attention"], width=4.6)
    order = [r[0] for r in left] + [r[0] for r in middle] + [r[0] for r in right]
    for a, b in zip(order, order[1:]):
        _arrow(ax, pos[a], pos[b], lw=0.9)
    stack, skips = [], []
    for name, _, _ in rows:
        if name.startswith(("conv_in", "down")):
            stack.append(name)
        elif name.startswith("up") and "ResBlock" in name:
            skips.append((stack.pop(), name))
    for a, b in skips:
        _arrow(
            ax,
            (pos[a][0] + 1.15, pos[a][1]),
            (pos[b][0] - 1.15, pos[b][1]),
            color="#ABABAB",
            linestyle="--",
            lw=0.8,
        )
    ax.text(
        3.5,
        1.25,
        r"$t \to$ sinusoidal embedding $\to$ MLP: "
        "added inside every ResBlock (blue and orange boxes)",
        ha="center",
        fontsize=9,
        color="#006BA4",
    )
    ax.text(
        3.5,
        0.7,
        "dashed grey: skip connections (concatenated on the channel axis)",
        ha="center",
        fontsize=8,
        color="#595959",
    )
    ax.text(0.0, 0.7, r"input $x_t$: " + _shape(left[0][1]), ha="center", fontsize=8)
    ax.text(
        7.0,
        0.7,
        r"output $\epsilon_\theta$: " + _shape(right[-1][2]),
        ha="center",
        fontsize=8,
    )
    ax.set(xlim=(-1.6, 8.6), ylim=(bottom - 0.8, 1.6))
    ax.axis("off")
    return fig, skips
