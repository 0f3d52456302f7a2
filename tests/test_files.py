import hashlib

import pytest

from ddpm_lite.files import atomic_write, file_hash


def test_file_hash_matches_hashlib(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 3_000_000)  # spans several 1 MiB chunks
    assert file_hash(path, "sha256") == hashlib.sha256(b"x" * 3_000_000).hexdigest()
    assert file_hash(path, "md5") == hashlib.md5(b"x" * 3_000_000).hexdigest()


def test_failed_write_leaves_the_target_untouched_and_no_temporary_file(tmp_path):
    target = tmp_path / "out"
    target.write_text("old")

    def write(temporary):
        open(temporary, "w").write("half")
        raise OSError("interrupted")

    with pytest.raises(OSError, match="interrupted"):
        atomic_write(target, write)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == [
        "out"
    ]


def test_successful_write_replaces_the_target(tmp_path):
    target = tmp_path / "out"
    atomic_write(target, lambda temporary: open(temporary, "w").write("new"))
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == [
        "out"
    ]


def test_written_file_gets_the_umask_permissions_not_mkstemps_private_ones(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        target = tmp_path / "out"
        atomic_write(target, lambda temporary: open(temporary, "w").write("new"))
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644
