import pytest
import torch

from ddpm_lite.data import to_model_range
from ddpm_lite.widgets import forward_process_explorer, frame_steps, scrubber

PNG_MAGIC = b"\x89PNG"


def links_between(box, source, target):
    return [
        link
        for link in box.links
        if link.source == (source, "index")
        and link.target == (target, "selected_index")
    ]


def test_scrubber_links_the_slider_to_every_stack_in_the_browser():
    frames = [[b"a", b"b", b"c"], [b"d", b"e", b"f"]]
    box = scrubber(
        [[PNG_MAGIC + f for f in row] for row in frames],
        [1, 2, 3],
        "t",
        ["x", "y"],
        "kind",
    )
    dropdown, slider, outer = box.children
    assert all(len(links_between(box, slider, stack)) == 1 for stack in box.stacks)
    assert len(links_between(box, dropdown, outer)) == 1
    assert [len(s.children) for s in box.stacks] == [3, 3]


@pytest.fixture(scope="module")
def explorer():
    digits = to_model_range(
        torch.randint(
            0,
            256,
            (4, 28, 28),
            dtype=torch.uint8,
            generator=torch.Generator().manual_seed(0),
        )
    )
    return forward_process_explorer(
        digits, torch.Generator().manual_seed(1), T=50, n_frames=3
    )


def test_explorer_frames_are_distinct_pngs(explorer):
    box = explorer.children[0]
    assert len(box.stacks) == 4  # one per schedule kind
    for stack in box.stacks:
        values = [bytes(image.value) for image in stack.children]
        assert all(v.startswith(PNG_MAGIC) for v in values) and len(set(values)) == len(
            values
        )
    assert list(box.slider.options) == [1, 25, 50]


def test_explorer_reports_bad_live_settings_instead_of_raising(explorer):
    _, live, status = explorer.children
    beta_start, beta_end, _, apply = live.children
    beta_start.value, beta_end.value = 0.009, 0.002
    apply.click()
    assert status.value.startswith("Not recomputed: beta_start must be <= beta_end")


def test_frame_steps_cover_both_ends():
    assert frame_steps(1000, 21)[0] == 0 and frame_steps(1000, 21)[-1] == 999
    assert frame_steps(5, 21) == [0, 1, 2, 3, 4]


def test_png_of_writes_a_png_of_the_figure_size():
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    from ddpm_lite.widgets import png_of

    fig = plt.figure(figsize=(2, 1), dpi=50)
    image = Image.open(io.BytesIO(png_of(fig)))
    plt.close(fig)
    assert image.format == "PNG" and image.size == (100, 50)


def test_interpolation_explorer_has_a_frame_per_lam_for_each_t():
    import io

    import numpy as np
    from PIL import Image

    from ddpm_lite.widgets import interpolation_explorer

    g = torch.Generator().manual_seed(0)
    x_a, x_b = torch.full((1, 8, 8), -1.0), torch.full((1, 8, 8), 1.0)
    lams = [0.0, 0.5, 1.0]
    decoded = {
        "t = 10": torch.rand(3, 2, 1, 8, 8, generator=g) * 2 - 1,
        "t = 50": torch.rand(3, 2, 1, 8, 8, generator=g) * 2 - 1,
    }
    box = interpolation_explorer(x_a, x_b, decoded, lams)
    dropdown, slider, _ = box.children
    assert list(slider.options) == lams and list(dropdown.options) == [
        "t = 10",
        "t = 50",
    ]
    frames = [bytes(image.value) for stack in box.stacks for image in stack.children]
    assert len(frames) == 6 and len(set(frames)) == 6
    pixels = np.asarray(Image.open(io.BytesIO(frames[0])).convert("L"))
    assert (
        pixels.std() > 10
    )  # black and white endpoints and noisy mixes: not a blank frame


def test_guidance_explorer_has_a_frame_per_scale_for_each_kind():
    from ddpm_lite.widgets import guidance_explorer

    g = torch.Generator().manual_seed(0)
    grids = {
        kind: [torch.rand(10, 1, 8, 8, generator=g) * 2 - 1 for _ in range(3)]
        for kind in ("classifier", "cfg")
    }
    box = guidance_explorer(grids, [0.0, 1.0, 5.0])
    dropdown, slider, _ = box.children
    assert list(slider.options) == [0.0, 1.0, 5.0] and list(dropdown.options) == [
        "classifier",
        "cfg",
    ]
    frames = [bytes(image.value) for stack in box.stacks for image in stack.children]
    assert len(set(frames)) == 6 and all(f.startswith(PNG_MAGIC) for f in frames)
    with pytest.raises(ValueError, match="has 2 batches for 3 scales"):
        guidance_explorer({"cfg": grids["cfg"][:2]}, [0.0, 1.0, 5.0])
