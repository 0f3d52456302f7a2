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
