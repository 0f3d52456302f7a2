import matplotlib.pyplot as plt

from ddpm_lite.plotting import COLORS, use_book_style


def test_book_style_is_opaque_and_colour_blind_safe():
    use_book_style()
    assert plt.rcParams["figure.facecolor"] == "white" and plt.rcParams["savefig.facecolor"] == "white"
    cycle = plt.rcParams["axes.prop_cycle"].by_key()
    assert cycle["color"] == COLORS and len(set(map(str, cycle["linestyle"]))) == len(COLORS)
    assert plt.rcParams["image.cmap"] == "cividis"
