"""Display only: scrubbable figures that work live in Jupyter and on the static site.

A scrubber is a slider `jslink`ed to a `Stack` of pre-rendered PNG `Image`s. The link
runs in the browser, so the saved notebook (and the HTML built from it) still scrubs
with no kernel. Controls that need Python (recomputing frames) are labelled as such.
"""

from __future__ import annotations

import io
import math
from typing import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from .diffusion import q_sample
from .plotting import tile_digits
from .schedules import SCHEDULE_KINDS, NoiseSchedule, make_betas


def png_of(fig: plt.Figure) -> bytes:
    """The figure as PNG bytes at its own dpi: one frame of a scrubber."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    return buf.getvalue()


def frame_stack(frames: Sequence[bytes], width: str = "100%") -> widgets.Stack:
    return widgets.Stack(
        [
            widgets.Image(value=f, format="png", layout=widgets.Layout(width=width))
            for f in frames
        ],
        selected_index=0,
    )


def scrubber(
    frames: Sequence[Sequence[bytes]],
    slider_values: Sequence,
    slider_label: str,
    choice_labels: Sequence[str] | None = None,
    choice_label: str = "",
) -> widgets.VBox:
    """A slider over `slider_values` (and a dropdown over `choice_labels`).

    Together they show frames[choice][i].

    Both controls drive the images through jslink: no kernel is needed to scrub.
    """
    slider = widgets.SelectionSlider(
        options=list(slider_values),
        value=slider_values[0],
        description=slider_label,
        continuous_update=True,
        layout=widgets.Layout(width="95%"),
    )
    inner = [frame_stack(f) for f in frames]
    links = [
        widgets.jslink((slider, "index"), (stack, "selected_index")) for stack in inner
    ]
    controls: list = [slider]
    if choice_labels is not None:
        dropdown = widgets.Dropdown(
            options=list(choice_labels),
            value=choice_labels[0],
            description=choice_label,
        )
        outer = widgets.Stack(inner, selected_index=0)
        links.append(widgets.jslink((dropdown, "index"), (outer, "selected_index")))
        controls = [dropdown, slider]
        body = outer
    else:
        body = inner[0]
    box = widgets.VBox([*controls, body])
    # Handles for live updates and tests: the controls, the frame stacks and the
    # browser-side links.
    box.slider, box.stacks, box.links = slider, inner, links
    return box


def render_forward_frames(
    x0: Tensor, schedule: NoiseSchedule, steps: Sequence[int], noise: Tensor, title: str
) -> list[bytes]:
    """One PNG per code index in `steps`.

    Each shows x_t of the first digit, alpha_bar and log SNR with a marker at t, and the
    histogram of all pixels of x_t against N(0, 1). x0, noise: (B, 1, H, W) in [-1, 1].
    The figure is built once and its artists updated.
    """
    fig, axes = plt.subplots(
        1, 3, figsize=(9.0, 2.6), dpi=72, gridspec_kw={"width_ratios": [1, 1.6, 1.6]}
    )
    image = axes[0].imshow(x0[0, 0].numpy(), cmap="gray", vmin=-2.5, vmax=2.5)
    axes[0].set(xticks=[], yticks=[])
    axes[0].grid(False)
    t_axis = np.arange(1, schedule.T + 1)
    ax = axes[1]
    ax.plot(t_axis, schedule.alpha_bars.numpy(), label=r"$\bar\alpha_t$")
    ax.set(xlabel="t", ylabel=r"$\bar\alpha_t$", ylim=(-0.05, 1.05))
    snr_ax = ax.twinx()
    snr_ax.plot(
        t_axis,
        np.log10(schedule.snr.numpy()),
        color="#FF800E",
        linestyle="--",
        label=r"$\log_{10}$ SNR",
    )
    snr_ax.set_ylabel(r"$\log_{10}$ SNR", color="#FF800E")
    snr_ax.grid(False)
    vline = ax.axvline(1, color="black", linewidth=1)
    (marker,) = ax.plot([1], [1.0], "o", color="black")
    ax.legend(handles=ax.lines[:1] + snr_ax.lines[:1], fontsize=7, loc="center right")
    ax = axes[2]
    grid = np.linspace(-4, 4, 200)
    edges = np.linspace(-4, 4, 61)
    bars = ax.bar(
        edges[:-1], np.zeros(60), width=np.diff(edges), align="edge", color="#5F9ED1"
    )
    ax.plot(
        grid,
        np.exp(-(grid**2) / 2) / math.sqrt(2 * math.pi),
        color="black",
        label=r"$\mathcal{N}(0,1)$",
    )
    ax.set(
        xlabel="pixel value of $x_t$", ylim=(0, 1.6), title="pixels of $x_t$ vs N(0, 1)"
    )
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    frames = []
    for t in steps:
        xt = q_sample(schedule, x0, t, noise)
        image.set_data(xt[0, 0].numpy())
        axes[0].set_title(f"$x_t$, t = {t + 1}")
        alpha_bar = schedule.alpha_bars[t].item()
        vline.set_xdata([t + 1, t + 1])
        marker.set_data([t + 1], [alpha_bar])
        axes[1].set_title(f"{title}: " + r"$\bar\alpha_t$ = " + f"{alpha_bar:.3f}")
        density, _ = np.histogram(xt.flatten().numpy(), bins=edges, density=True)
        for bar, height in zip(bars, density):
            bar.set_height(height)
        frames.append(png_of(fig))
    plt.close(fig)
    return frames


def frame_steps(T: int, n_frames: int) -> list[int]:
    """n_frames code indices from 0 to T-1, evenly spaced (fewer if T is small)."""
    return (
        sorted({round(i * (T - 1) / (n_frames - 1)) for i in range(n_frames)})
        if n_frames > 1
        else [0]
    )


def forward_process_explorer(
    x0: Tensor,
    generator: torch.Generator,
    T: int = 1000,
    n_frames: int = 21,
    kinds: Sequence[str] = SCHEDULE_KINDS,
) -> widgets.VBox:
    """Scrub t and switch the schedule (in the browser).

    Setting beta_start, beta_end and T needs a kernel.

    x0: (B, 1, H, W) digits in [-1, 1]. One noise draw is reused for every frame, so
    scrubbing shows the same digit drowning.
    """
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)

    def all_frames(T: int, beta_start: float, beta_end: float):
        steps = frame_steps(T, n_frames)
        frames = []
        for kind in kinds:
            params = (
                {}
                if kind == "cosine"
                else {"beta_start": beta_start, "beta_end": beta_end}
            )
            schedule = NoiseSchedule(make_betas(kind, T, **params)).to(dtype=x0.dtype)
            frames.append(render_forward_frames(x0, schedule, steps, noise, kind))
        return steps, frames

    steps, frames = all_frames(T, 1e-4, 0.02)
    box = scrubber(frames, [s + 1 for s in steps], "t", kinds, "schedule")
    style = {"description_width": "initial"}
    beta_start = widgets.FloatLogSlider(
        value=1e-4, base=10, min=-6, max=-2, description="β_start", style=style
    )
    beta_end = widgets.FloatLogSlider(
        value=0.02, base=10, min=-3, max=-0.3, description="β_end", style=style
    )
    steps_T = widgets.IntSlider(
        value=T, min=10, max=2000, step=10, description="T", style=style
    )
    apply = widgets.Button(description="Recompute frames")
    status = widgets.Label(
        "β_start, β_end and T need a running kernel (the schedule and t work anywhere)."
    )

    def recompute(_=None) -> None:
        try:
            new_steps, new_frames = all_frames(
                steps_T.value, beta_start.value, beta_end.value
            )
        except ValueError as err:  # e.g. beta_start > beta_end
            status.value = f"Not recomputed: {err}"
            return
        for stack, kind_frames in zip(box.stacks, new_frames):
            for image, frame in zip(stack.children, kind_frames):
                image.value = frame
        box.slider.options = [s + 1 for s in new_steps]
        status.value = (
            f"Frames recomputed for T = {steps_T.value}, "
            f"β from {beta_start.value:.2g} to {beta_end.value:.2g} (cosine ignores β)."
        )

    apply.on_click(recompute)
    live = widgets.HBox([beta_start, beta_end, steps_T, apply])
    return widgets.VBox([box, live, status])


def render_reverse_frames(states: Sequence, title: str, cols: int = 4) -> list[bytes]:
    """One PNG per sampler state: its batch x_t beside the model's x0_pred at that step.

    states: `sampling.SamplerState`s (t the code index of xt; x0_pred None for the
    initial noise). x_t (left) is shown over [-2.5, 2.5] (it is noise-sized early on),
    x0_pred (right) over [-1, 1].
    """
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.4), dpi=72)
    first = states[0].xt
    left = axes[0].imshow(tile_digits(first, cols), cmap="gray", vmin=-2.5, vmax=2.5)
    right = axes[1].imshow(
        np.full_like(tile_digits(first, cols), -1.0), cmap="gray", vmin=-1, vmax=1
    )
    for ax in axes:
        ax.set(xticks=[], yticks=[])
        ax.grid(False)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    frames = []
    for state in states:
        left.set_data(tile_digits(state.xt, cols))
        right.set_data(
            tile_digits(state.x0_pred, cols)
            if state.x0_pred is not None
            else np.full_like(left.get_array(), -1.0)
        )
        step = state.t + 1  # the paper's step of x_t; 0 is the sample x_0
        axes[0].set_title(f"$x_t$, t = {step}" if step > 0 else "$x_0$, the sample")
        axes[1].set_title(
            r"the model's $\hat x_0$" + (" (none yet)" if state.x0_pred is None else "")
        )
        fig.suptitle(title)
        frames.append(png_of(fig))
    plt.close(fig)
    return frames


def reverse_process_explorer(
    trajectories: dict[str, Sequence], steps: Sequence[int]
) -> widgets.VBox:
    """Scrub t through the reverse process and switch the sampler, all in the browser.

    Each frame shows x_t beside x0_pred. trajectories: sampler name -> its states
    (`SamplerState`, any order); steps: the code indices to show, from T - 1 down to -1
    (the sample). Every trajectory must have a state at each step.
    """
    frames = []
    for name, states in trajectories.items():
        by_t = {s.t: s for s in states}
        missing = [t for t in steps if t not in by_t]
        if missing:
            raise ValueError(
                f"trajectory {name!r} has no state at code indices {missing[:5]}"
            )
        frames.append(render_reverse_frames([by_t[t] for t in steps], name))
    return scrubber(frames, [t + 1 for t in steps], "t", list(trajectories), "sampler")


def render_interpolation_frames(
    x_a: Tensor, x_b: Tensor, decoded: Tensor, lams: Sequence[float], title: str
) -> list[bytes]:
    """One PNG per mixing weight: x_a, the decoded mixes at lam (one per seed), x_b.

    x_a, x_b: (1, H, W) in [-1, 1]; decoded: (len(lams), seeds, 1, H, W), as from
    `interpolation.interpolate_via_noise` with the endpoint pair repeated once per seed.
    """
    seeds = decoded.shape[1]
    fig, axes = plt.subplots(1, seeds + 2, figsize=(1.3 * (seeds + 2), 1.9), dpi=72)
    shown = [
        axis.imshow(np.zeros(x_a.shape[-2:]), cmap="gray", vmin=-1, vmax=1)
        for axis in axes
    ]
    for axis in axes:
        axis.set(xticks=[], yticks=[])
        axis.grid(False)
    shown[0].set_data(x_a[0].float().numpy())
    shown[-1].set_data(x_b[0].float().numpy())
    axes[0].set_title(r"$x_0^a$")
    axes[-1].set_title(r"$x_0^b$")
    fig.tight_layout(rect=(0, 0, 1, 0.86))
    frames = []
    for lam, row in zip(lams, decoded):
        for image, x in zip(shown[1:-1], row):
            image.set_data(x[0].clamp(-1, 1).float().numpy())
        axes[1].set_title(f"ω = {lam:.2f}", loc="left")
        fig.suptitle(title)
        frames.append(png_of(fig))
    plt.close(fig)
    return frames


def interpolation_explorer(
    x_a: Tensor, x_b: Tensor, decoded_by_t: dict[str, Tensor], lams: Sequence[float]
) -> widgets.VBox:
    """Scrub the mixing weight lam and pick the interpolation's step t, in the browser.

    decoded_by_t: a label for each t -> its decoded mixes, (len(lams), seeds, 1, H, W).
    """
    frames = [
        render_interpolation_frames(x_a, x_b, decoded, lams, f"decoded from {label}")
        for label, decoded in decoded_by_t.items()
    ]
    return scrubber(
        frames, [round(float(lam), 2) for lam in lams], "ω", list(decoded_by_t), "t"
    )


def guidance_explorer(
    grids: dict[str, Sequence[Tensor]], scales: Sequence[float], cols: int = 10
) -> widgets.VBox:
    """Scrub the guidance scale and switch the kind of guidance, all in the browser.

    grids: a name for each kind -> one batch of images (N, 1, H, W) in [-1, 1] per
    scale, in the order of `scales`.
    """
    frames = []
    for name, batches in grids.items():
        if len(batches) != len(scales):
            raise ValueError(
                f"grids[{name!r}] has {len(batches)} batches for {len(scales)} scales"
            )
        fig, ax = plt.subplots(
            figsize=(7.5, 1.3 * -(-batches[0].shape[0] // cols)), dpi=72
        )
        image = ax.imshow(tile_digits(batches[0], cols), cmap="gray", vmin=-1, vmax=1)
        ax.set(xticks=[], yticks=[])
        ax.grid(False)
        kind_frames = []
        for scale, batch in zip(scales, batches):
            image.set_data(tile_digits(batch, cols))
            ax.set_title(f"{name}, scale {scale:g}")
            kind_frames.append(png_of(fig))
        plt.close(fig)
        frames.append(kind_frames)
    return scrubber(
        frames, [float(s) for s in scales], "scale", list(grids), "guidance"
    )
