"""Re-execute the chapters that import ddpm_lite when the package changes.

Jupyter Book caches each chapter's execution keyed on the notebook's own code cells, so an
edit to ddpm_lite alone would leave stale outputs on the site. `make book` runs this first:
it hashes every file of the package and, when the hash differs from the one recorded in the
cache, drops the cached executions of every notebook whose code mentions ddpm_lite and
touches those notebooks: Sphinx re-reads (and so re-executes) only sources whose modification
time changed, so a dropped cache entry alone would leave the old page in place.

    python tools/book_cache.py [cache_dir]
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ddpm_lite"
STAMP_NAME = "ddpm_lite.sha256"


def package_hash(package: Path = PACKAGE) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def imports_package(notebook: Path) -> bool:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return any(c["cell_type"] == "code" and "ddpm_lite" in "".join(c["source"]) for c in cells)


def invalidate(cache_dir: Path, current_hash: str) -> list[str]:
    """Drop stale executions; return the notebooks whose cache was dropped."""
    stamp = cache_dir / STAMP_NAME
    if stamp.is_file() and stamp.read_text().strip() == current_hash:
        return []
    dropped = []
    if cache_dir.is_dir():
        from jupyter_cache import get_cache

        cache = get_cache(cache_dir)
        for record in cache.list_cache_records():
            notebook = Path(record.uri)
            if not notebook.is_file() or imports_package(notebook):
                cache.remove_cache(record.pk)
                dropped.append(notebook.name)
                if notebook.is_file():
                    os.utime(notebook)
    cache_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(current_hash + "\n")
    return dropped


if __name__ == "__main__":
    cache_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "_build" / ".jupyter_cache"
    dropped = invalidate(cache_dir, package_hash())
    if dropped:
        print(f"ddpm_lite changed: re-executing {len(dropped)} chapter(s): {', '.join(sorted(dropped))}")
