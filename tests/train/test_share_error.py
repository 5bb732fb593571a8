"""Rank 0's error reaches the other ranks as plain values (rclrec/train/distributed.py), with
a world that passes them along in this process instead of torch.distributed."""

import errno
import pickle
from dataclasses import dataclass, field

import pytest
import torch

from rclrec.data.split import leave_one_out
from rclrec.errors import InputError
from rclrec.eval.ranking import NonFiniteScores
from rclrec.files import CorruptFile
from rclrec.methods import method_class
from rclrec.models import build_encoder
from rclrec.run import build_instances, load_data, resolve
from rclrec.train.distributed import World
from rclrec.train.trainer import Trainer


@dataclass(frozen=True)
class WireWorld(World):
    """Rank 0's ``share`` pickles what it sends onto ``wire``; another rank receives it."""

    wire: list = field(default_factory=list)

    def share(self, obj):
        if self.main:
            self.wire.append(pickle.dumps(obj))
            return obj
        return pickle.loads(self.wire.pop(0))

    def broadcast_parameters(self, params) -> None:
        pass


class Unpicklable(Exception):
    """An error that cannot be pickled (it holds a lambda): sending it would fail."""

    def __init__(self) -> None:
        super().__init__("something odd")
        self.hook = lambda: None


def ranks() -> tuple[WireWorld, WireWorld]:
    wire: list = []
    return WireWorld(0, 2, wire=wire), WireWorld(1, 2, wire=wire)


@pytest.mark.parametrize("error, kind, words", [
    (CorruptFile("best.pt: truncated"), CorruptFile, "best.pt: truncated"),
    (NonFiniteScores("scores are NaN"), NonFiniteScores, "scores are NaN"),
    (InputError("a setting"), InputError, "a setting"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "run/best.pt"), IsADirectoryError,
     "Is a directory"),
    (Unpicklable(), RuntimeError, "rank 0 failed: Unpicklable: something odd"),
    (KeyError("weights"), RuntimeError, "rank 0 failed: KeyError: 'weights'"),
])
def test_every_rank_raises_rank_0s_error(error, kind, words):
    zero, one = ranks()
    with pytest.raises(type(error)) as on_zero:
        zero.share_error(error, kinds=(CorruptFile, NonFiniteScores))
    assert on_zero.value is error  # rank 0 raises its own, with its traceback
    with pytest.raises(kind, match=words) as on_one:
        one.share_error(None, kinds=(CorruptFile, NonFiniteScores))
    if isinstance(error, OSError):
        assert (on_one.value.errno, on_one.value.filename) == (errno.EISDIR, "run/best.pt")
    zero.share_error(None)  # no error: every rank goes on
    one.share_error(None)


def test_any_error_loading_best_pt_reaches_the_other_ranks(tiny_config, tmp_path,
                                                           monkeypatch):
    """Not only a damaged file: whatever loading best.pt raises on rank 0 stops the others."""
    cfg = resolve(tiny_config())
    split = leave_one_out(load_data(cfg))
    instances = build_instances(cfg, split)
    zero, one = ranks()
    trainers = []
    for world in (zero, one):
        method = method_class(cfg.method)(cfg, split, instances, torch.device("cpu"))
        encoder = build_encoder(cfg.encoder, split.num_items, method.extra_tokens)
        trainers.append(Trainer(cfg, split, instances, encoder, method, torch.device("cpu"),
                                tmp_path, show_progress=False, world=world))
    trainers[0].best_path.write_bytes(b"")

    def odd() -> None:
        raise Unpicklable()

    monkeypatch.setattr(trainers[0], "load_best", odd)
    with pytest.raises(Unpicklable):
        trainers[0].load_best_on_rank_0()
    with pytest.raises(RuntimeError, match="rank 0 failed: Unpicklable"):
        trainers[1].load_best_on_rank_0()
