"""Training methods: what is added to the recommendation loss at each step.

Add a method by writing one module (its ``Config`` section dataclass and its ``Method``
subclass, rclrec/methods/base.py says what the trainer calls) and one line in ``METHODS``: its
config section, the generic flags, the contract tests and the cell hash follow from here.
"""

from __future__ import annotations

from rclrec.config import ConfigError, register_methods
from rclrec.methods.base import Method
from rclrec.methods.cl4srec import CL4SRec
from rclrec.methods.contrarec import ContraRec
from rclrec.methods.controls import RandomPositives, RepeatedCentres
from rclrec.methods.ct4rec import CT4Rec
from rclrec.methods.duorec import DuoRec
from rclrec.methods.hpm import HPM
from rclrec.methods.mclrec import MCLRec
from rclrec.methods.rcl import RCL

METHODS: dict[str, type[Method]] = {
    "sasrec": Method,
    "rcl": RCL,
    "cl4srec": CL4SRec,
    "duorec": DuoRec,
    "ct4rec": CT4Rec,
    "mclrec": MCLRec,
    "contrarec": ContraRec,
    "hpm": HPM,
    "random_positives": RandomPositives,  # controls (issue 16): RCL's extra CE work, no contrast
    "repeated_centres": RepeatedCentres,
}

register_methods({name: cls.section for name, cls in METHODS.items()},
                 {cls.section: cls.Config for cls in METHODS.values() if cls.section})


def method_class(name: str) -> type[Method]:
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of {', '.join(sorted(METHODS))}")
    return METHODS[name]
