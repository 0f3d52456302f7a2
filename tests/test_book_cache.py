import importlib.util
import json
import os
from pathlib import Path

import nbformat
from jupyter_cache import get_cache

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("book_cache", ROOT / "tools" / "book_cache.py")
book_cache = importlib.util.module_from_spec(spec)
spec.loader.exec_module(book_cache)


def cached_notebook(cache, path: Path, code: str) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.write_text(json.dumps(nb))
    cache.cache_notebook_file(path, check_validity=False)


def test_a_changed_package_drops_only_the_chapters_that_import_it(tmp_path):
    cache_dir = tmp_path / "cache"
    cache = get_cache(cache_dir)
    cached_notebook(cache, tmp_path / "uses.ipynb", "import ddpm_lite")
    cached_notebook(cache, tmp_path / "plain.ipynb", "print(1)")
    assert book_cache.invalidate(cache_dir, "hash-1") == ["uses.ipynb"]  # no stamp yet: treated as changed
    cached_notebook(cache, tmp_path / "uses.ipynb", "import ddpm_lite")
    assert book_cache.invalidate(cache_dir, "hash-1") == []  # unchanged package: nothing dropped
    os.utime(tmp_path / "uses.ipynb", (0, 0))
    os.utime(tmp_path / "plain.ipynb", (0, 0))
    assert book_cache.invalidate(cache_dir, "hash-2") == ["uses.ipynb"]
    # Sphinx re-reads a source only if its mtime changed: the dropped notebook must be touched.
    assert (tmp_path / "uses.ipynb").stat().st_mtime > 0 and (tmp_path / "plain.ipynb").stat().st_mtime == 0
    assert {Path(r.uri).name for r in get_cache(cache_dir).list_cache_records()} == {"plain.ipynb"}


def test_package_hash_changes_with_any_file(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("x = 1\n")
    first = book_cache.package_hash(package)
    (package / "a.py").write_text("x = 2\n")
    assert book_cache.package_hash(package) != first
