"""Atomic file writes: a result is either the old file or the whole new one, never half.

Failures name the file: writing raises ``WriteFailed`` (disk full, read-only folder), reading
one of our JSON files back raises ``CorruptFile`` (truncated, empty, not JSON).
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from rclrec.errors import InputError

# mkstemp creates files readable by their owner only; results get the usual mode instead.
# Read once at import: os.umask can only be read by setting it, which races with threads.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class CorruptFile(InputError):
    """A file of ours that cannot be read back (truncated, empty, overwritten, forged); the
    message names it."""


class WriteFailed(OSError):
    """Writing a file failed (disk full, read-only folder); the message names the file and says
    that its previous version, if any, is unchanged. ``errno`` is the cause's."""


def _write_failed(path: Path, cause: OSError) -> WriteFailed:
    reasons = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
               errno.EROFS: "the file system is read-only",
               errno.EACCES: f"no permission to write in {path.parent}",
               errno.EPERM: f"no permission to write in {path.parent}"}
    reason = reasons.get(cause.errno, cause.strerror or str(cause))
    kept = (f"the previous {path.name} is unchanged" if path.exists()
            else f"{path.name} was not written")
    error = WriteFailed(f"cannot write {path}: {reason} ({cause.strerror or cause}); {kept}")
    error.errno = cause.errno  # str() stays the message: strerror is not set
    return error


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``.

    The temporary file lives in the same directory, so the rename is atomic on POSIX; it is
    synced to disk first, so that a crash after the rename cannot leave an empty file.

    Raises:
        WriteFailed: an OSError while writing (the temporary file is removed, ``path`` kept).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _write_failed(path, e) from e
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, WriteFailed):
            raise _write_failed(path, e) from e
        raise
    return path


class _KeepFirstError:
    """A binary file whose first OSError is kept: torch.save reports a failed write as a
    RuntimeError ("unexpected pos ...") that has lost the errno."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def flush(self) -> None:
        self.f.flush()


def write_binary_atomic(path: str | os.PathLike, write: Callable[[Any], None]) -> Path:
    """Atomic ``write(f)`` to a binary file object; an OSError raised by ``f.write`` surfaces
    as ``WriteFailed`` even if ``write`` turned it into another exception."""

    def to_tmp(tmp: str) -> None:
        with open(tmp, "wb") as raw:
            f = _KeepFirstError(raw)
            try:
                write(f)
            except Exception as e:
                if f.error is not None and e is not f.error:
                    raise f.error from e
                raise

    return atomic_write(path, to_tmp)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return atomic_write(path, write)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file of ours (metrics.json, config.json, cell and manifest records).

    Raises:
        FileNotFoundError: no such file.
        CorruptFile: empty, truncated, not UTF-8 or not JSON (the message names the file).
    """
    path = Path(path)
    data = path.read_bytes()
    if not data.strip():
        raise CorruptFile(f"{path}: empty file (expected JSON written by rclrec)")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise CorruptFile(f"{path}: not UTF-8 text, so not a JSON file written by rclrec "
                          f"(overwritten or damaged?)") from None
    except json.JSONDecodeError as e:
        raise CorruptFile(f"{path}: not valid JSON at line {e.lineno} column {e.colno} "
                          f"({e.msg}); truncated or edited?") from None
