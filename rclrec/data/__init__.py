"""Reading, splitting and batching user item sequences."""

from rclrec.data.dataset import DataError, SequenceDataset

__all__ = ["DataError", "SequenceDataset"]
