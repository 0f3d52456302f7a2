import json
import os
from pathlib import Path

import nbformat
from jupyter_cache import get_cache

from tools import book_cache

ROOT = Path(__file__).resolve().parents[1]


def cached_notebook(cache, path: Path, code: str) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path.write_text(json.dumps(nb))
    cache.cache_notebook_file(path, check_validity=False)


def test_a_changed_package_drops_only_the_chapters_that_import_it(tmp_path):
    cache_dir = tmp_path / "cache"
    cache = get_cache(cache_dir)
    cached_notebook(cache, tmp_path / "uses.ipynb", "import ddpm_lite")
    cached_notebook(cache, tmp_path / "plain.ipynb", "print(1)")
    assert book_cache.invalidate(cache_dir, "hash-1") == [
        "uses.ipynb"
    ]  # no stamp yet: treated as changed
    cached_notebook(cache, tmp_path / "uses.ipynb", "import ddpm_lite")
    assert (
        book_cache.invalidate(cache_dir, "hash-1") == []
    )  # unchanged package: nothing dropped
    os.utime(tmp_path / "uses.ipynb", (0, 0))
    os.utime(tmp_path / "plain.ipynb", (0, 0))
    assert book_cache.invalidate(cache_dir, "hash-2") == ["uses.ipynb"]
    # Sphinx re-reads a source only if its mtime changed: the dropped notebook must be touched.
    assert (tmp_path / "uses.ipynb").stat().st_mtime > 0 and (
        tmp_path / "plain.ipynb"
    ).stat().st_mtime == 0
    assert {Path(r.uri).name for r in get_cache(cache_dir).list_cache_records()} == {
        "plain.ipynb"
    }


def test_package_hash_changes_with_any_file(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("x = 1\n")
    first = book_cache.package_hash(package)
    (package / "a.py").write_text("x = 2\n")
    assert book_cache.package_hash(package) != first


def test_the_toc_lists_every_chapter_notebook():
    assert sorted(p.name for p in book_cache.toc_notebooks()) == sorted(
        p.name for p in (ROOT / "book").glob("*.ipynb")
    )


def test_stale_notebooks_are_executed_into_the_cache_and_fresh_ones_are_not(tmp_path):
    cache_dir = tmp_path / "cache"
    cached_notebook(
        get_cache(cache_dir), tmp_path / "fresh.ipynb", "print('cached already')"
    )
    stale = tmp_path / "stale.ipynb"
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "import os\nprint(os.getcwd(), os.environ['OMP_NUM_THREADS'])"
            )
        ]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    stale.write_text(json.dumps(nb))
    broken = tmp_path / "broken.ipynb"
    nb.cells = [nbformat.v4.new_code_cell("raise ValueError('left to the build')")]
    broken.write_text(json.dumps(nb))
    executed, failed = book_cache.execute_stale(
        cache_dir, [tmp_path / "fresh.ipynb", stale, broken], workers=2, timeout=60
    )
    assert executed == ["stale.ipynb"] and failed == ["broken.ipynb"]
    _, merged = get_cache(cache_dir).merge_match_into_notebook(
        nbformat.read(stale, as_version=4)
    )
    output = merged.cells[0].outputs[0]["text"]
    assert output.split()[0] == str(
        tmp_path
    )  # executed in the notebook's own directory, as the build does
    assert output.split()[1] == str(
        max(1, (os.cpu_count() or 1) // 2)
    )  # each kernel its share of the cores
