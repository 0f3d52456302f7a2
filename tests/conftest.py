import pytest
import torch


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
