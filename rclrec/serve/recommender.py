"""The top-k items after a history of items, from a trained run.

Items are named by their ids in the data file (``item_ids`` of the dataset, saved in model.pt).
A history's items the model does not know (absent from its training data) are left out and
reported back; a history with no known item gets no recommendation, as there is nothing to
encode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rclrec.data.dataset import PAD
from rclrec.eval import ranking
from rclrec.models.encode import encode_histories

# Histories scored per forward pass: bounds the (rows, items) score matrix whatever the
# number of histories a caller hands over.
ROWS_PER_PASS = 256


@dataclass
class Recommendation:
    """Top items for one history, best first, with their scores (dot products)."""

    items: list[str]
    scores: list[float]
    unknown: list[str] = field(default_factory=list)  # history items the model does not know


class Recommender:
    """A trained encoder and its item vocabulary, ready to score histories (thread-safe: it
    keeps no state between calls)."""

    def __init__(self, encoder: torch.nn.Module, item_ids: Sequence[str], max_len: int,
                 device: torch.device | str = "cpu") -> None:
        num_items = encoder.item_table.shape[0] - 1
        if len(item_ids) != num_items:
            raise ValueError(f"{len(item_ids)} item ids for a model of {num_items} items")
        self.encoder = encoder.eval()
        self.item_ids = list(item_ids)
        self.index = {item: i + 1 for i, item in enumerate(self.item_ids)}
        self.max_len = max_len
        self.device = torch.device(device)

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str = "cpu") -> Recommender:
        """Load ``run_dir/model.pt``; runs saved before model.pt kept the item ids read them
        from the run's dataset."""
        from rclrec.model_file import data_of_model, model_from_saved, read_model_file
        from rclrec.run import pick_device

        dev = pick_device(device)
        saved = read_model_file(run_dir)
        encoder, cfg = model_from_saved(saved, dev)
        item_ids = saved.get("item_ids")
        if item_ids is None:  # never echo what a forged config's "dataset" file holds
            dataset = data_of_model(cfg, Path(run_dir) / "model.pt", saved["num_items"])
            item_ids = dataset.item_ids or [str(i) for i in range(1, dataset.num_items + 1)]
        return cls(encoder, item_ids, cfg.encoder.max_len, dev)

    def recommend(self, histories: Sequence[Sequence[str]], k: int = 10,
                  exclude_history: bool = True) -> list[Recommendation]:
        """Top ``k`` items after each history (oldest item first).

        Args:
            histories: item ids as in the data file.
            k: how many items per history.
            exclude_history: leave out the items already in the history (as the evaluation).
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        k = min(k, len(self.item_ids))
        known = [np.array([self.index[i] for i in h if i in self.index], dtype=np.int64)
                 for h in histories]
        out = [Recommendation([], [], [str(i) for i in h if i not in self.index])
               for h in histories]
        rows = [r for r, seq in enumerate(known) if len(seq)]
        for start in range(0, len(rows), ROWS_PER_PASS):
            chunk = rows[start:start + ROWS_PER_PASS]
            values, ids = self._top_k([known[r] for r in chunk], k, exclude_history)
            for j, r in enumerate(chunk):
                keep = np.isfinite(values[j])  # fewer than k items left after the exclusions
                out[r].items = [self.item_ids[i - 1] for i in ids[j][keep]]
                out[r].scores = [float(v) for v in values[j][keep]]
        return out

    def _top_k(self, seqs: list[np.ndarray], k: int,
               exclude_history: bool) -> tuple[np.ndarray, np.ndarray]:
        """(rows, k) best scores and item rows for non-empty index sequences."""
        states = encode_histories(self.encoder, seqs, self.max_len, device=self.device,
                                  chunk=len(seqs))
        table = self.encoder.item_table
        # Every item of the history, not only the last max_len. (row, item) pairs cost memory
        # in proportion to the items given; a (rows, longest history) matrix would let one long
        # history multiply the memory of the whole batch.
        lengths = torch.tensor([len(s) for s in seqs])
        row = torch.repeat_interleave(torch.arange(len(seqs)), lengths).to(self.device)
        item = torch.from_numpy(np.concatenate(seqs)).to(self.device)
        # A large catalogue is scored in blocks of items, keeping a running top k, so no
        # (rows, items) matrix is held (the bound of the evaluation's ranking).
        block = max(k, ranking.SCORE_ELEMENTS // len(seqs))
        best: tuple[torch.Tensor, torch.Tensor] | None = None
        with torch.no_grad():
            for start in range(0, table.shape[0], block):
                scores = states @ table[start:start + block].T
                if start == PAD:
                    scores[:, PAD] = -torch.inf
                if exclude_history:
                    inside = (item >= start) & (item < start + scores.shape[1])
                    scores[row[inside], item[inside] - start] = -torch.inf
                values, ids = torch.topk(scores, min(k, scores.shape[1]), dim=1)
                if best is not None:  # merge with the best of the earlier blocks
                    values = torch.cat([best[0], values], 1)
                    ids = torch.cat([best[1], ids + start], 1)
                    values, pick = torch.topk(values, k, dim=1)
                    ids = ids.gather(1, pick)
                best = values, ids
        return best[0].cpu().numpy(), best[1].cpu().numpy()
