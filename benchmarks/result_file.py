"""Where the speed scripts write their result JSON, with the provenance every result needs."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any

import torch

from rclrec.provenance import git_commit

RESULTS = Path(__file__).resolve().parent / "results"


def write_result(name: str, out: dict[str, Any]) -> Path:
    """Write ``out`` plus machine, torch, commit and command to ``results/<name>.json``."""
    script = Path(sys.argv[0]).name
    out = {**out, "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
           "git_commit": git_commit(),
           "command": f"python benchmarks/{script} " + " ".join(sys.argv[1:])}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written {path}")
    return path
