"""What the method tests share: the tiny run (tests/conftest.py) smaller still, the split, and
a method built on them."""

import pytest
import torch

from rclrec.config import load_config
from rclrec.data.batches import prefix_instances, window_instances
from rclrec.data.registry import load_dataset
from rclrec.data.split import leave_one_out
from rclrec.methods import METHODS
from rclrec.models import build_encoder
from rclrec.run import resolve


@pytest.fixture
def method_run(tiny) -> dict[str, str]:
    """The tiny run with short inputs, one block, small batches and few HPM clusters."""
    return {**tiny, "data.max_len": "20", "encoder.num_blocks": "1", "train.batch_size": "64",
            "train.eval_batch_size": "512", "hpm.num_clusters": "8"}


@pytest.fixture(scope="module")
def split():
    return leave_one_out(load_dataset("synthetic"))


@pytest.fixture
def built(method_run, split):
    """``built(name, encoder_name="sasrec")``: (cfg, instances, encoder, method) of a method
    set up on the smaller tiny run (its encoder's instances: windows or prefixes)."""
    def build(name: str, encoder_name: str = "sasrec"):
        cfg = resolve(load_config(overrides={**method_run, "method": name,
                                             "encoder.name": encoder_name}))
        make = window_instances if cfg.train.instances == "windows" else prefix_instances
        inst = make(split.train, cfg.encoder.max_len)
        torch.manual_seed(0)
        method = METHODS[name](cfg, split, inst, torch.device("cpu"))
        encoder = build_encoder(cfg.encoder, split.num_items, method.extra_tokens)
        method.setup(encoder)
        return cfg, inst, encoder, method
    return build
