"""Print each chapter's execution time from the book build's cache, slowest first.

    python tools/chapter_times.py [_build/.jupyter_cache]

myst-nb records how long each notebook took to execute when `make book` ran it; a cached
chapter keeps the time of the run that filled the cache.
"""

from __future__ import annotations

import sys
from pathlib import Path

from jupyter_cache import get_cache


def main(cache_dir: str = "_build/.jupyter_cache") -> None:
    cache = get_cache(cache_dir)
    times = sorted(
        (
            (r.data.get("execution_seconds") or 0.0, Path(r.uri).name)
            for r in cache.list_cache_records()
        ),
        reverse=True,
    )
    for seconds, name in times:
        print(f"{seconds:7.1f} s  {name}")


if __name__ == "__main__":
    main(*sys.argv[1:])
