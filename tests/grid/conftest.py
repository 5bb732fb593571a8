"""Shared setup of the grid tests."""

import pytest


@pytest.fixture
def tiny_cell(tiny) -> dict[str, str]:
    """A grid cell's settings: the tiny run of RCL, two steps of 64 instances."""
    return {**tiny, "method": "rcl", "train.max_steps": "2", "train.batch_size": "64"}
