"""The in-memory dataset: one chronological item sequence per user."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from rclrec.errors import InputError

PAD = 0


class DataError(InputError):
    """Bad input data; the message names the file and line, or the option."""


@dataclass
class SequenceDataset:
    """Chronological item sequences, one per user.

    Attributes:
        sequences: one int64 array per user, item ids in 1..num_items (0 is padding), oldest first.
        num_items: the largest item id; the embedding table has num_items + 1 rows.
        name: where the data came from (a dataset name or a file path).
        user_ids: original user id of each sequence (same order), as strings.
        item_ids: original item id of each internal id; item_ids[i - 1] belongs to id i.
        skipped: counts of documented skips while reading (e.g. users with too few items).
        times: seconds of each interaction (float64, same shapes as ``sequences``), for logs
            with a time column; None otherwise. The temporal split needs them.
    """

    sequences: list[np.ndarray]
    num_items: int
    name: str = "dataset"
    user_ids: list[str] | None = None
    item_ids: list[str] | None = None
    skipped: dict[str, int] = field(default_factory=dict)
    times: list[np.ndarray] | None = None

    def __post_init__(self) -> None:
        if not self.sequences:
            raise DataError(f"{self.name}: no user sequences")
        if self.user_ids is not None and len(self.user_ids) != len(self.sequences):
            raise DataError(f"{self.name}: {len(self.user_ids)} user ids for "
                            f"{len(self.sequences)} sequences")

    @property
    def num_users(self) -> int:
        return len(self.sequences)

    @property
    def num_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    def content_hash(self) -> str:
        """A short hash of the sequences, used to key caches (similarity indexes)."""
        h = hashlib.sha256()
        h.update(np.int64(self.num_items).tobytes())
        for s in self.sequences:
            h.update(np.int64(len(s)).tobytes())
            h.update(np.ascontiguousarray(s, dtype=np.int64).tobytes())
        return h.hexdigest()[:16]
