"""File helpers shared by data and checkpoint.

Hashing, and writes that never leave half a file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable


def file_hash(path: str | os.PathLike, algorithm: str) -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(target: Path, write: Callable[[str], None]) -> None:
    """Call write(temporary_path) on a file beside target, then rename it onto target.

    The rename is atomic, so target is either untouched or complete; if write raises (an
    interrupted download, a failed checksum), the temporary file is removed.
    """
    handle, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".part"
    )
    os.close(handle)
    try:
        write(temporary)
        # mkstemp creates the file private (0600): give it a plain open()'s permissions
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
