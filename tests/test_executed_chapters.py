"""Every chapter, as executed by the book build: nbval's lax rules, checked on the executed notebooks.

`make book` executes each chapter once and stores the executed notebook in the build's cache,
_build/.jupyter_cache, keyed on the chapter's code (the site is rendered from it; myst-nb's copies in
_build/jupyter_execute/ carry outputs only for chapters executed inside the Sphinx run). Rather
than execute every chapter a second time under nbval, these tests take each chapter's execution
from the cache and apply nbval's --nbval-lax rules to it: every code cell ran, in order, without an
error, except cells tagged raises-exception, which must raise. A chapter whose current code has no
execution in the cache is stale and fails. (`make nbval` still runs nbval itself on book/.)

Needs a built book; `make test` sets DDPM_BOOK_SITE_TESTS=required, so a missing build fails there
and a bare `pytest` skips with the reason.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = (
    pytest.mark.slow
)  # `make unit` leaves these out: subprocesses, real sampling, the built site

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "_build" / ".jupyter_cache"
CHAPTERS = sorted(p.stem for p in (ROOT / "book").glob("*.ipynb"))
REQUIRED = os.environ.get("DDPM_BOOK_SITE_TESTS") == "required"


def code_cells(path: Path) -> list[dict]:
    return [
        c
        for c in json.loads(path.read_text(encoding="utf-8"))["cells"]
        if c["cell_type"] == "code"
    ]


def source(cell: dict) -> str:
    return (
        "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    )


@pytest.fixture(params=CHAPTERS)
def chapter(request):
    import nbformat
    from jupyter_cache import get_cache

    if not (CACHE / "global.db").is_file():
        message = f"no build cache at {CACHE} (run `make book`)"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    path = ROOT / "book" / f"{request.param}.ipynb"
    try:
        _, executed = get_cache(CACHE).merge_match_into_notebook(
            nbformat.read(path, as_version=4)
        )
    except KeyError:
        pytest.fail(
            f"the cache holds no execution of the current {path.name}: stale, rebuild with `make book`"
        )
    return code_cells(path), [c for c in executed.cells if c.cell_type == "code"]


def test_executed_copy_is_of_the_current_source(chapter):
    original, executed = chapter
    assert [source(c) for c in executed] == [source(c) for c in original], (
        "stale: rebuild with `make book`"
    )


def test_every_code_cell_ran_in_order(chapter):
    _, executed = chapter
    counts = [c.get("execution_count") for c in executed if source(c).strip()]
    assert all(isinstance(n, int) for n in counts), f"cells that did not run: {counts}"
    assert counts == sorted(counts) and len(set(counts)) == len(counts)


def test_no_cell_raised_unless_tagged(chapter):
    _, executed = chapter
    for cell in executed:
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if "raises-exception" in cell.get("metadata", {}).get("tags", []):
            assert errors, (
                f"a cell tagged raises-exception did not raise:\n{source(cell)[:300]}"
            )
        else:
            assert not errors, (
                f"{errors[0]['ename']}: {errors[0]['evalue']}\nin:\n{source(cell)[:300]}"
            )
