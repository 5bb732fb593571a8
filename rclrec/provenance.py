"""Where a result came from: the code's commit, the device and the memory a process used."""

from __future__ import annotations

import os
import resource
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def git_commit() -> str | None:
    """HEAD of the checkout (``-dirty`` with uncommitted changes); ``$RCLREC_GIT_COMMIT`` where
    the code travelled without its .git folder (a lent GPU machine)."""
    if os.environ.get("RCLREC_GIT_COMMIT"):
        return os.environ["RCLREC_GIT_COMMIT"]
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


# The commit of the code this process loaded: a benchmark process trains cell after cell for
# hours while the checkout moves on, so HEAD at a run's start can be newer than its code.
CODE_COMMIT = git_commit()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (Linux ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def device_label(device: torch.device) -> str:
    """What results record as the device: "cpu", or the GPU's model name."""
    import torch

    return str(device) if device.type == "cpu" else torch.cuda.get_device_name(device)
