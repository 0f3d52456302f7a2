"""What the built site shows as text, read from its HTML (no browser needed).

- No raw LaTeX in a link's text or a page's title. A chapter title with math becomes
  plain text wherever Sphinx reuses it: inside every `{doc}` link to the page ("The
  U-Net: \\epsilon_\\theta for images"), in the browser tab, in the search results. In
  the sidebar, the page's table of contents and the previous/next buttons it stays a
  math span that only MathJax typesets, raw without JavaScript. So link texts and titles
  are plain text (Unicode: ε_θ, x̂₀, ᾱ_t), and a backslash command anywhere in one
  fails, math span or not.
- Chapter code fits the site's code column of 88 characters (ruff's line length): a
  longer line scrolls sideways. Every code block a chapter page shows counts: the inputs
  of code cells, `literalinclude`d package code and fenced code blocks, including those
  collapsed by default (cells tagged hide-input, dropdowns), since a reader who opens
  one reads it in the same column and folding code away must not become a way to keep
  its lines long. Cell outputs do not count (they print what the code computed), nor
  does code the build leaves out (remove-input, remove-cell), which is not in the HTML.

The checkers are plain functions of a page's HTML, tested here on small synthetic
pages. The tests of the site itself need a built book (`make book`; an unexecuted build
is enough, since link texts and code inputs do not depend on the outputs). `make test`
sets DDPM_BOOK_SITE_TESTS=required, so a missing build fails there; a bare `pytest`
skips those tests with the reason.
"""

from __future__ import annotations

import os
import re
import unicodedata
from html.parser import HTMLParser
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
REQUIRED = os.environ.get("DDPM_BOOK_SITE_TESTS") == "required"
CODE_COLUMN = 88  # columns; pyproject.toml's ruff line-length

# A TeX control sequence: a backslash and a name (\epsilon, \mathbf) or one of the
# symbols that TeX commands and MathJax delimiters use (\( \) \[ \] \{ \} \, \; \! \|).
LATEX_COMMAND = re.compile(r"\\(?:[A-Za-z]+|[()\[\]{},;:!|])")


class Link(NamedTuple):
    href: str
    text: str  # the link's text, whitespace collapsed


class CodeLine(NamedTuple):
    block: int  # the code block's position on the page, from 1
    line: str
    width: int  # display columns (see display_width)
    collapsed: bool  # inside a <details> element (hide-input cells, dropdowns)
    cell: bool  # a code cell's input; else a literalinclude or a fenced code block


class _CodeBlock(NamedTuple):
    lines: list[str]
    collapsed: bool
    cell: bool


class PageText(HTMLParser):
    """What a page shows as text: its links, <title>, <h1> headings and code blocks.

    Only elements that Sphinx's HTML always closes (a, div, details, pre, h1, title) are
    tracked, so void or unclosed elements elsewhere cannot confuse the nesting.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[Link] = []
        self.titles: list[str] = []  # the <title> and every <h1>
        self.code: list[_CodeBlock] = []  # code blocks outside cell outputs
        self._divs: list[set[str]] = []  # the classes of each open <div>
        self._details = 0
        self._link: tuple[str, list[str]] | None = None
        self._title: list[str] | None = None
        self._pre: list[str] | None = None
        self._skip = 0  # inside <script> or <style>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attrs_ = dict(attrs)
        classes = set((attrs_.get("class") or "").split())
        if tag == "div":
            self._divs.append(classes)
        elif tag == "details":
            self._details += 1
        elif tag == "a" and self._link is None:
            self._link = (attrs_.get("href") or "", [])
        elif tag in ("title", "h1") and self._title is None:
            self._title = []
        elif tag in ("script", "style"):
            self._skip += 1
        elif (
            tag == "pre"
            and self._divs
            and "highlight" in self._divs[-1]
            and not any({"cell_output", "output"} & c for c in self._divs)
        ):
            self._pre = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._divs:
            self._divs.pop()
        elif tag == "details" and self._details:
            self._details -= 1
        elif tag == "a" and self._link is not None:
            href, parts = self._link
            self.links.append(Link(href, " ".join("".join(parts).split())))
            self._link = None
        elif tag in ("title", "h1") and self._title is not None:
            self.titles.append(" ".join("".join(self._title).split()))
            self._title = None
        elif tag in ("script", "style") and self._skip:
            self._skip -= 1
        elif tag == "pre" and self._pre is not None:
            text = "".join(self._pre).expandtabs(8)
            self.code.append(
                _CodeBlock(
                    text.rstrip("\n").split("\n"),
                    self._details > 0,
                    any("cell_input" in c for c in self._divs),
                )
            )
            self._pre = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._link is not None:
            self._link[1].append(data)
        if self._title is not None:
            self._title.append(data)
        if self._pre is not None:
            self._pre.append(data)


def read_page(html: str) -> PageText:
    page = PageText()
    page.feed(html)
    page.close()
    return page


def latex_in_links(html: str) -> list[Link]:
    """The links whose text holds a TeX command."""
    return [link for link in read_page(html).links if LATEX_COMMAND.search(link.text)]


def latex_in_titles(html: str) -> list[str]:
    """The page's <title> and <h1> texts that hold a TeX command."""
    return [t for t in read_page(html).titles if LATEX_COMMAND.search(t)]


def display_width(line: str) -> int:
    """Columns a monospaced font gives the line: wide (CJK) characters take two,
    combining marks none (x̂ is x and U+0302), as ruff counts its line length."""
    return sum(
        0
        if unicodedata.combining(c)
        else 2
        if unicodedata.east_asian_width(c) in "WF"
        else 1
        for c in line
    )


def long_code_lines(html: str, limit: int = CODE_COLUMN) -> list[CodeLine]:
    """The lines of the page's code blocks (not outputs) wider than `limit` columns."""
    return [
        CodeLine(number, line, display_width(line), block.collapsed, block.cell)
        for number, block in enumerate(read_page(html).code, start=1)
        for line in block.lines
        if display_width(line) > limit
    ]


# The checkers on small pages shaped as Sphinx and myst-nb write them (no build needed).

LINKS_PAGE = """<html><head><title>{title} &#8212; ddpm-book</title></head><body>
<nav><ul><li class="toctree-l1">
<a class="reference internal" href="unet.html">{toc}</a></li></ul></nav>
<h1>{title}<a class="headerlink" href="#top" title="Link to this heading">#</a></h1>
<p>The U-Net of <a class="reference internal" href="unet.html">
<span class="doc">{doc}</span></a> and <a class="reference internal"
href="#equation-fwd"><span class="eqno">(3)</span></a>.</p>
<script>var s = "<a href='x'>\\\\epsilon</a>";</script>
<a class="left-prev" href="unet.html"><i class="fa-solid fa-angle-left"></i>
<div class="prev-next-info"><p class="prev-next-subtitle">previous</p>
<p class="prev-next-title">{toc}</p></div></a></body></html>"""
RAW = {
    "title": r"The U-Net: \(\epsilon_\theta\) for images",
    "toc": r'The U-Net: <span class="math">\(\epsilon_\theta\)</span> for images',
    "doc": r"The U-Net: \epsilon_\theta for images",
}
PLAIN = {k: "The U-Net: ε_θ for images" for k in RAW}


def test_latex_in_links_finds_a_doc_link_the_sidebar_and_the_prev_button():
    found = latex_in_links(LINKS_PAGE.format(**RAW))
    assert found == [
        Link("unet.html", r"The U-Net: \(\epsilon_\theta\) for images"),
        Link("unet.html", r"The U-Net: \epsilon_\theta for images"),
        Link("unet.html", r"previous The U-Net: \(\epsilon_\theta\) for images"),
    ]


def test_latex_in_links_passes_unicode_link_texts():
    assert latex_in_links(LINKS_PAGE.format(**PLAIN)) == []


@pytest.mark.parametrize(
    "text", [r"\bar\alpha_t", r"x_{t} \mathbf{I}", r"\(x\)", r"a\,b", r"\hat{x}_0"]
)
def test_latex_command_matches_tex(text):
    assert LATEX_COMMAND.search(text)


@pytest.mark.parametrize(
    "text", ["ᾱ_t and x̂₀", "ε_θ(x_t, t)", "q(x_{t-1} | x_t)", "(3)", "#", "5 \\ 2"]
)
def test_latex_command_leaves_plain_text(text):
    assert not LATEX_COMMAND.search(text)


def test_latex_in_titles_finds_the_title_and_the_heading():
    assert latex_in_titles(LINKS_PAGE.format(**RAW)) == [
        r"The U-Net: \(\epsilon_\theta\) for images — ddpm-book",
        r"The U-Net: \(\epsilon_\theta\) for images#",
    ]
    assert latex_in_titles(LINKS_PAGE.format(**PLAIN)) == []


def cell(source: str, output: str = "", tag: str = "") -> str:
    """A code cell as myst-nb writes it; tag="hide-input" folds the input away."""
    pre = '<div class="highlight"><pre><span></span>{}\n</pre></div>'
    code = (
        '<div class="cell_input docutils container">'
        f'<div class="highlight-ipython3 notranslate">{pre.format(source)}</div></div>'
    )
    if tag == "hide-input":
        code = (
            '<details class="admonition hide above-input"><summary>'
            '<p class="collapsed admonition-title">Show code cell source</p>'
            f"</summary>{code}</details>"
        )
    out = (
        '<div class="cell_output docutils container"><div class="output stream'
        f' highlight-myst-ansi notranslate">{pre.format(output)}</div></div>'
    )
    cell = f"{code}{out if output else ''}"
    return f'<div class="cell tag_{tag} docutils container">{cell}</div>'


def test_long_code_lines_counts_inputs_folded_or_not_and_no_outputs():
    long = "x = 1  # " + "a" * 80  # 89 columns
    page = (
        cell("y = 2", output="o" * 200)
        + cell(f'<span class="n">x</span>{long[1:]}\nshort = 1')
        + cell(long, tag="hide-input")
    )
    assert long_code_lines(page) == [
        CodeLine(2, long, 89, False, True),
        CodeLine(3, long, 89, True, True),
    ]
    assert long_code_lines(cell(long[:88], output="o" * 200)) == []


def test_long_code_lines_reads_literalinclude_blocks_and_entities():
    line = (
        "    return a &lt; b" + " " * 63 + "# " + "b" * 10
    )  # 91 columns once unescaped
    page = (
        '<div class="highlight-python notranslate"><div class="highlight"><pre>'
        f"<span></span>def f(a, b):\n{line}\n</pre></div></div>"
    )
    assert long_code_lines(page) == [
        CodeLine(1, line.replace("&lt;", "<"), 91, False, False)
    ]


def test_display_width_counts_columns():
    assert display_width("x̂₀ = ᾱ_t") == 8  # the combining circumflex takes no column
    assert display_width("中文") == 4
    assert display_width("\tx".expandtabs(8)) == 9


# The built site.


def site_pages(pattern: str) -> list[str]:
    """Pages of the built site, relative to it (the theme's _static templates are not
    pages)."""
    return sorted(
        p.relative_to(SITE).as_posix()
        for p in SITE.glob(pattern)
        if "_static" not in p.relative_to(SITE).parts
    )


# Without a build, one placeholder each: require_site() skips it (fails when required).
PAGES = site_pages("**/*.html") or ["index.html"]
CHAPTERS = site_pages("book/*.html") or ["book/preface.html"]


def require_site() -> None:
    if not (SITE / "index.html").is_file():
        reason = f"no built site at {SITE} (run `make book`)"
        if REQUIRED:
            pytest.fail(f"site tests required but cannot run: {reason}")
        pytest.skip(reason)


def built(path: str) -> str:
    require_site()
    return (SITE / path).read_text(encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize("path", PAGES)
def test_link_texts_show_no_raw_latex(path):
    found = latex_in_links(built(path))
    assert not found, f"{path}: {len(found)} link texts with LaTeX:\n" + "\n".join(
        f"  -> {link.href}: {link.text!r}" for link in found
    )


@pytest.mark.slow
@pytest.mark.parametrize("path", PAGES)
def test_title_and_heading_show_no_raw_latex(path):
    found = latex_in_titles(built(path))
    assert not found, f"{path}: <title>/<h1> with LaTeX: {found}"


@pytest.mark.slow
@pytest.mark.parametrize("path", CHAPTERS)
def test_chapter_code_lines_fit_the_code_column(path):
    found = long_code_lines(built(path))
    assert not found, (
        f"{path}: {len(found)} code lines wider than {CODE_COLUMN} columns:\n"
        + "\n".join(
            f"  block {c.block} ({'cell' if c.cell else 'included/fenced'}"
            f"{', collapsed' if c.collapsed else ''}), {c.width} columns: {c.line}"
            for c in found
        )
    )
