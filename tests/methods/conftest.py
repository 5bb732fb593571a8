"""What the method tests share: the tiny run (tests/conftest.py) smaller still, and the split."""

import pytest

from rclrec.data.registry import load_dataset
from rclrec.data.split import leave_one_out


@pytest.fixture
def method_run(tiny) -> dict[str, str]:
    """The tiny run with short inputs, one block, small batches and few HPM clusters."""
    return {**tiny, "data.max_len": "20", "encoder.num_blocks": "1", "train.batch_size": "64",
            "train.eval_batch_size": "512", "hpm.num_clusters": "8"}


@pytest.fixture(scope="module")
def split():
    return leave_one_out(load_dataset("synthetic"))
