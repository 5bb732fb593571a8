"""Checkpoints and the saved model, written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from rclrec.files import atomic_write


def save_torch_atomic(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_torch(path: str | os.PathLike) -> Any:
    """Load a checkpoint of ours. Only tensors and plain Python values are stored in them."""
    return torch.load(path, map_location="cpu", weights_only=True)
