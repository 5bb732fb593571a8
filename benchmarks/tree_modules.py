"""Loading a module from another source tree (an older commit's worktree) beside today's."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_module(name: str, path: Path) -> ModuleType:
    """The module in file ``path``, loaded under ``name`` and registered in ``sys.modules``:
    dataclasses look their module up there, and numba's cached kernels are found by it (the
    second run of an old tree, which loads them from its cache, failed without it)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
