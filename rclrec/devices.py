"""Copies between the host and the device that never make the host wait for a GPU.

A blocking copy to a GPU first waits for all the work already queued there, so a training
step copies its host arrays with ``non_blocking``. A copy *to the CPU* must block: with
``non_blocking`` it returns before the data has landed, and reading it then reads garbage.
"""

from __future__ import annotations

import numpy as np
import torch


def to_device(data: np.ndarray | torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``data`` (a numpy array or a tensor) on ``device``; without waiting for the device
    when the destination is not the CPU, and only then."""
    tensor = data if isinstance(data, torch.Tensor) else torch.from_numpy(np.asarray(data))
    device = torch.device(device)
    return tensor.to(device, non_blocking=device.type != "cpu")
