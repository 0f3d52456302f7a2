import matplotlib.pyplot as plt

from ddpm_lite.plotting import COLORS, use_book_style


def test_book_style_is_opaque_and_colour_blind_safe():
    use_book_style()
    assert plt.rcParams["figure.facecolor"] == "white" and plt.rcParams["savefig.facecolor"] == "white"
    cycle = plt.rcParams["axes.prop_cycle"].by_key()
    tableau = plt.style.library["tableau-colorblind10"]["axes.prop_cycle"].by_key()["color"]
    assert [c.upper() for c in cycle["color"]] == [c.upper() for c in tableau[: len(COLORS)]]
    assert len(set(map(str, cycle["linestyle"]))) == len(COLORS)
    assert plt.rcParams["image.cmap"] == "cividis"
