"""A benchmark's data file that grows point by point: a second run with the same --json
adds the points it lacks and its own command; the file is rewritten whole after each
point, so a run cut short keeps what it measured."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ddpm_lite.files import atomic_write


def open_record(path: Path, n: int) -> dict:
    """The data file at path (or a new one), with this run's command appended."""
    record = {"commands": [], "points": []}
    if path.exists():
        record = json.loads(path.read_text())
        if record["n"] != n:
            sys.exit(f"{path} holds --n {record['n']}, not {n}: use another --json")
    record["commands"].append("python " + " ".join(sys.argv))
    return record


def save_record(path: Path, record: dict) -> None:
    text = json.dumps(record, indent=2)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def save_live_check(path: Path, record: dict, check: dict, x) -> None:
    """Score the live check's samples x against the test images that ship with the
    package (a chapter recomputes it), record it and write the file."""
    from fd_mnist import LIVE_REFERENCE, Scorer

    live = Scorer(None, 2000).fd(x)
    record["live_check"] = {**check, "reference": LIVE_REFERENCE, "fd_mnist": live}
    save_record(path, record)
    print(f"wrote {path}")
