import os

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each xdist worker takes its share of the cores. Two workers of two threads each on two cores wait on
    # each other's OpenMP barriers: batch-1 sampling of the tiny U-Net measured 2x slower than with one thread.
    _threads = max(
        1,
        (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")),
    )
    torch.set_num_threads(_threads)
    os.environ["OMP_NUM_THREADS"] = str(
        _threads
    )  # for the command-line runs that tests start


LONGEST_FIRST = (
    "test_site.py",
)  # about 4 minutes on one worker: the built site in Chromium


def pytest_collection_modifyitems(items):
    """Collect the longest file first: with --dist loadfile, xdist hands out files in collection order, so the
    longest one starts at once and the other worker takes the many short files beside it."""
    items.sort(key=lambda item: item.path.name not in LONGEST_FIRST)


class HostSyncError(RuntimeError):
    pass


@pytest.fixture
def no_host_sync(monkeypatch):
    """Make every way of reading a tensor's value on the host raise: on a GPU each one waits for the device."""

    def refuse(name):
        def method(self, *args, **kwargs):
            raise HostSyncError(f"Tensor.{name} reads a value on the host")

        return method

    for name in ("item", "__bool__", "tolist", "__int__", "__float__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, refuse(name))
