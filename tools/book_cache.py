"""Re-execute the chapters that import ddpm_lite when the package changes; execute stale chapters in parallel.

Jupyter Book caches each chapter's execution keyed on the notebook's own code cells, so an
edit to ddpm_lite alone would leave stale outputs on the site. `make book` runs this first:
it hashes every file of the package and, when the hash differs from the one recorded in the
cache, drops the cached executions of every notebook whose code mentions ddpm_lite and
touches those notebooks: Sphinx re-reads (and so re-executes) only sources whose modification
time changed, so a dropped cache entry alone would leave the old page in place.

Then, with --execute, it executes every chapter of the table of contents that the cache holds no
execution of, several at a time (one process per core, each kernel limited to its share of the
cores), and stores the results in the cache, where the build finds them: each chapter still
executes once, in its own directory, exactly as the build would run it. A chapter that fails here
is left to the build, which executes it again and reports the error.

    python tools/book_cache.py [cache_dir] [--execute]
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ddpm_lite"
STAMP_NAME = "ddpm_lite.sha256"


def package_hash(package: Path = PACKAGE) -> str:
    digest = hashlib.sha256()
    for path in sorted(
        p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    ):
        digest.update(
            path.relative_to(package).as_posix().encode()
            + b"\0"
            + path.read_bytes()
            + b"\0"
        )
    return digest.hexdigest()


def imports_package(notebook: Path) -> bool:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return any(
        c["cell_type"] == "code" and "ddpm_lite" in "".join(c["source"]) for c in cells
    )


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


def toc_notebooks(root: Path = ROOT) -> list[Path]:
    """The notebooks that _toc.yml lists, in its order."""
    entries = re.findall(
        r"file:\s*(\S+)", (root / "_toc.yml").read_text(encoding="utf-8")
    )
    return [
        root / f"{entry}.ipynb"
        for entry in entries
        if (root / f"{entry}.ipynb").is_file()
    ]


def execute_stale(
    cache_dir: Path, notebooks: list[Path], workers: int, timeout: int
) -> tuple[list[str], list[str]]:
    """Execute the notebooks the cache has no execution of, `workers` at a time; return (executed, failed)."""
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.executors.basic import ExecutionWorkerLocalMProc, ProcessData

    cache = get_cache(cache_dir)
    stale = []
    for notebook in notebooks:
        try:
            cache.match_cache_notebook(nbformat.read(notebook, as_version=4))
        except KeyError:
            stale.append(cache.add_nb_to_project(str(notebook)))
    if not stale:
        return [], []
    stale.sort(
        key=lambda record: Path(record.uri).stat().st_size, reverse=True
    )  # big (slow) chapters first
    # Each kernel gets its share of the cores: kernels started by the pool inherit this.
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    jobs = [
        ProcessData(record.pk, record.uri, cache, timeout, False) for record in stale
    ]
    with multiprocessing.Pool(workers) as pool:
        results = list(
            pool.imap_unordered(ExecutionWorkerLocalMProc(), jobs, chunksize=1)
        )
    return [Path(uri).name for code, uri in results if code == 0], [
        Path(uri).name for code, uri in results if code != 0
    ]


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    cache_dir = Path(arguments[0]) if arguments else ROOT / "_build" / ".jupyter_cache"
    dropped = invalidate(cache_dir, package_hash())
    if dropped:
        print(
            f"ddpm_lite changed: re-executing {len(dropped)} chapter(s): {', '.join(sorted(dropped))}"
        )
    if "--execute" in sys.argv:
        timeout = int(
            re.search(r"timeout:\s*(\d+)", (ROOT / "_config.yml").read_text()).group(1)
        )
        executed, failed = execute_stale(
            cache_dir, toc_notebooks(), os.cpu_count() or 1, timeout
        )
        print(
            f"executed {len(executed)} chapter(s) in parallel"
            + (f"; left to the build: {', '.join(failed)}" if failed else "")
        )
