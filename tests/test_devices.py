"""rclrec/devices.py: copies to a GPU do not wait for it; copies to the CPU do."""

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from rclrec.devices import to_device


class RecordCopies(TorchDispatchMode):
    """Records each tensor.to(device) with its ``non_blocking``; answers a copy out of the
    meta device (which has no values) with an empty tensor instead of failing."""

    def __init__(self) -> None:
        super().__init__()
        self.copies: list[tuple[str, str, bool]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._to_copy.default:
            source, target = args[0], torch.device(kwargs["device"])
            self.copies.append((source.device.type, target.type,
                                kwargs.get("non_blocking", False)))
            if source.device.type == "meta":
                return torch.empty(source.shape, dtype=source.dtype, device=target)
        return func(*args, **kwargs)


def test_a_copy_waits_only_when_it_goes_to_the_cpu():
    with RecordCopies() as mode:
        on_meta = to_device(np.arange(3), torch.device("meta"))
        back = to_device(on_meta, "cpu")
    assert on_meta.device.type == "meta" and back.device.type == "cpu"
    # To the device without waiting; to the host waiting for the data to land.
    assert mode.copies == [("cpu", "meta", True), ("meta", "cpu", False)]


def test_numpy_arrays_and_tensors_arrive_unchanged():
    array = np.arange(6, dtype=np.int64).reshape(2, 3)
    assert torch.equal(to_device(array, "cpu"), torch.from_numpy(array))
    assert torch.equal(to_device(torch.from_numpy(array), "cpu"), torch.from_numpy(array))
    assert to_device(np.asarray([True, False]), "meta").dtype == torch.bool
