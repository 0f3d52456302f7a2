import matplotlib.pyplot as plt

from ddpm_lite.plotting import COLORS, use_book_style


def test_book_style_is_opaque_and_colour_blind_safe():
    use_book_style()
    assert (
        plt.rcParams["figure.facecolor"] == "white"
        and plt.rcParams["savefig.facecolor"] == "white"
    )
    cycle = plt.rcParams["axes.prop_cycle"].by_key()
    tableau = plt.style.library["tableau-colorblind10"]["axes.prop_cycle"].by_key()[
        "color"
    ]
    assert [c.upper() for c in cycle["color"]] == [
        c.upper() for c in tableau[: len(COLORS)]
    ]
    assert len(set(map(str, cycle["linestyle"]))) == len(COLORS)
    assert plt.rcParams["image.cmap"] == "cividis"


def test_show_digits_lays_the_batch_out_in_rows_and_pads_with_black():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from ddpm_lite.plotting import show_digits

    x = (
        torch.linspace(-1, 1, 5).reshape(5, 1, 1, 1).expand(5, 1, 2, 3)
    )  # image i is constant
    fig, ax = plt.subplots()
    show_digits(ax, x, "five", cols=2)
    grid = ax.images[0].get_array()
    assert grid.shape == (3 * 2, 2 * 3) and ax.get_title() == "five"
    assert (
        grid[0, 0] == -1
        and grid[0, 3] == -0.5
        and grid[2, 0] == 0
        and grid[4, 0] == 1
        and grid[4, 3] == -1
    )
    plt.close(fig)
