"""Training methods: what is added to the recommendation loss at each step.

Add a method by writing a ``Method`` subclass and one line in ``METHODS``.
"""

from __future__ import annotations

from rclrec.methods.base import Method
from rclrec.methods.rcl import RCL

METHODS: dict[str, type[Method]] = {
    "sasrec": Method,
    "rcl": RCL,
}


def method_class(name: str) -> type[Method]:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(sorted(METHODS))}")
    return METHODS[name]
