"""The base class of rclrec's errors about its input: files, data and settings.

The CLI turns an ``InputError`` (and an ``OSError``: a missing file, a full disk) into one
``rclrec CMD: error: ...`` line and exit code 2; any other exception is a bug in rclrec and keeps
its traceback. So a check of the user's input raises a subclass of ``InputError`` (whose message
names the file, line or setting), and an internal invariant check raises a plain ``ValueError``.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: a setting, a data file or a file of rclrec's; the message names it.

    A ``ValueError`` so that callers of the Python API that catch ``ValueError`` keep working."""


class ConfigError(InputError):
    """An unknown or badly typed setting; the message names the key and suggests a valid one.

    (Defined here, not in rclrec/config.py, which exports it too: rclrec/tracking.py raises it
    and rclrec/config.py imports tracking's names, so neither imports the other.)"""
