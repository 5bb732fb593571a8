"""Checkpoints and the saved model, written atomically and read back safely.

Every torch file rclrec reads goes through ``load_torch``: ``weights_only`` (a pickle that asks
to import or call anything is refused, not run), and a damaged or forged file is a
``CorruptFile`` naming it instead of a traceback from deep inside torch.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from rclrec.files import CorruptFile, write_binary_atomic


def save_torch_atomic(path: str | os.PathLike, obj: Any) -> Path:
    # Through a Python file object, so that a full disk raises an OSError with its errno
    # (torch writing to a path reports only "unexpected pos").
    return write_binary_atomic(path, lambda f: torch.save(obj, f))


def load_torch(path: str | os.PathLike) -> Any:
    """Load a checkpoint of ours. Only tensors and plain Python values are stored in them.

    Raises:
        OSError: no such file, or reading it failed (EIO); MemoryError. Not "damaged": the
            file may be good, and the advice to remove it must not reach a good checkpoint.
        CorruptFile: empty, truncated, not a torch file, compressed records (which could
            inflate far beyond the file's size), or a pickle that asks for anything but
            tensors and plain values.
    """
    path = Path(path)
    hint = ("remove it to start the run again" if path.name == "checkpoint.pt"
            else "train the run again or restore the file")
    if path.stat().st_size == 0:
        raise CorruptFile(f"{path}: empty file (0 bytes); {hint}")
    try:
        with zipfile.ZipFile(path) as archive:
            compressed = [i.filename for i in archive.infolist()
                          if i.compress_type != zipfile.ZIP_STORED]
    except (zipfile.BadZipFile, EOFError, ValueError) as e:  # OSError: unreadable, not damaged
        raise CorruptFile(f"{path}: not a PyTorch file written by rclrec ({e}: truncated or "
                          f"overwritten?); {hint}") from None
    if compressed:  # torch.save stores records uncompressed
        raise CorruptFile(f"{path}: not written by torch.save (compressed record "
                          f"{compressed[0]!r}); refused")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only names what a pickle asked for: a global (a class or function to
        # import and call) is a payload; anything else is damage.
        wanted = re.search(r"GLOBAL ([\w.]+)", str(e))
        if wanted:
            raise CorruptFile(f"{path}: refused to load: the file asks to import and call "
                              f"{wanted.group(1)}; a file of rclrec holds only tensors and "
                              f"plain values") from None
        raise CorruptFile(f"{path}: damaged PyTorch file "
                          f"({_informative_line(e)}); {hint}") from None
    except MemoryError:
        raise  # the machine's failure, not the file's: a good file must not be called damaged
    except OSError as e:  # likewise (a read error, EIO); named by the CLI as "path: reason"
        if e.filename is None:
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise
    except Exception as e:  # noqa: BLE001 -- the file is torch.load's only input: any failure
        # (RuntimeError, EOFError, KeyError, ... from a damaged archive) is about the file.
        raise CorruptFile(f"{path}: damaged PyTorch file ({type(e).__name__}: "
                          f"{_informative_line(e)}); {hint}") from None


def _informative_line(error: Exception) -> str:
    """The informative line of torch's multi-line messages (the first one that says what)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines if "documentation" not in line and "weights_only" not in line]
    return (useful or lines or [""])[0]


def state_dict_problem(state: Any, expected: dict[str, torch.Tensor]) -> str | None:
    """What keeps a saved state dict from loading into a model whose state dict is
    ``expected`` (a tensor missing, unexpected, of another shape), or None. The caller names
    the file: ``load_state_dict``'s own error is a RuntimeError that would read as a bug."""
    if not isinstance(state, dict):
        return f"weights are a {type(state).__name__}, not a dict of tensors"
    for key in sorted(set(expected) | set(state), key=str):
        if key not in state or key not in expected:
            return f"tensor {key!r} is {'missing' if key not in state else 'unexpected'}"
        if not isinstance(state[key], torch.Tensor) or state[key].shape != expected[key].shape:
            got = tuple(state[key].shape) if isinstance(state[key], torch.Tensor) else "no tensor"
            return f"tensor {key!r} is {got}, expected {tuple(expected[key].shape)}"
    return None

