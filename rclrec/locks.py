"""Exclusive locks on files: one process at a time trains a run folder or a benchmark cell.

``fcntl.flock`` on a lock file: the kernel drops the lock when its holder closes the file or
dies (a crash or ``kill -9`` leaves no stale lock behind). The holder writes who it is (pid,
host, start time) into the file, so a refused process can name it. The file itself stays:
unlinking a lock file lets two processes lock two different files of one name.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rclrec.errors import InputError


class LockBusy(InputError):
    """Another process holds the lock (a ValueError: the command line's input error, here a
    folder in use, rather than a bug)."""


def holder_text(record: str) -> str:
    """``pid 12 on host-a since 2026-12-01 10:00:00 UTC`` from a lock file's content."""
    try:
        who = json.loads(record)
        return f"pid {who['pid']} on {who['host']} since {who['since']}"
    except (ValueError, TypeError, KeyError):
        return "another process"  # it has the lock but has not written its name yet


@contextmanager
def exclusive_lock(path: str | os.PathLike, what: str,
                   busy: type[Exception] = LockBusy) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the ``with`` block.

    Args:
        path: the lock file.
        what: what the lock guards, for the message (e.g. "run folder runs/a").
        busy: the exception raised when another process holds it.

    Raises:
        busy: another process holds the lock; the message names it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_RDWR without truncation: opening must not erase the current holder's name.
    with os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o644), "r+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise busy(f"{what} is in use by {holder_text(f.read())}") from e
        f.truncate(0)
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                            "since": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}))
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate(0)  # released: the file names no holder
