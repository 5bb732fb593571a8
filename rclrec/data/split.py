"""Leave-one-out split (METHOD.md section 1) and the contrast units of RCL (section 3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rclrec.data.dataset import DataError, SequenceDataset

MIN_LENGTH = 3  # one training item, one validation item, one test item


@dataclass
class LeaveOneOutSplit:
    """Training sequences and the evaluation cases of every user (same user order as the dataset).

    train[u] is everything before the last two items. Validation input = train[u], target =
    the second-to-last item; test input = train[u] + validation item, target = the last item.
    """

    train: list[np.ndarray]
    valid_targets: np.ndarray
    test_targets: np.ndarray
    num_items: int

    @property
    def num_users(self) -> int:
        return len(self.train)

    def valid_inputs(self) -> list[np.ndarray]:
        return self.train

    def test_inputs(self) -> list[np.ndarray]:
        return [np.append(t, v) for t, v in zip(self.train, self.valid_targets, strict=True)]


def leave_one_out(ds: SequenceDataset) -> LeaveOneOutSplit:
    """Split every user's sequence into train / validation / test by its last two items."""
    for u, s in enumerate(ds.sequences):
        if len(s) < MIN_LENGTH:
            uid = ds.user_ids[u] if ds.user_ids else str(u)
            raise DataError(f"{ds.name}: user {uid} has {len(s)} interactions; leave-one-out needs "
                            f"at least {MIN_LENGTH} (filter short users when reading)")
    return LeaveOneOutSplit(
        train=[np.asarray(s[:-2], dtype=np.int64) for s in ds.sequences],
        valid_targets=np.array([s[-2] for s in ds.sequences], dtype=np.int64),
        test_targets=np.array([s[-1] for s in ds.sequences], dtype=np.int64),
        num_items=ds.num_items,
    )


def contrast_units(train: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """The unit of contrast of RCL: each training sequence split into (input, target).

    The target is the last training item; the input is every training item before it (may be
    empty when the training sequence has a single item). Similarities are computed on inputs.

    Returns:
        inputs: one int64 array per user.
        targets: (N,) int64.
    """
    inputs = [np.asarray(t[:-1], dtype=np.int64) for t in train]
    targets = np.array([t[-1] for t in train], dtype=np.int64)
    return inputs, targets
