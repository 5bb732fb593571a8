"""Recommendations from a trained run: the top-k items after a history of items.

Items are named by their ids in the data file (``item_ids`` of the dataset, saved in model.pt).
A history's items the model does not know (absent from its training data) are left out and
reported back; a history with no known item gets no recommendation, as there is nothing to
encode. Used by ``rclrec recommend`` (JSON lines in, JSON lines out) and ``rclrec serve`` (HTTP).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import torch

from rclrec.data.batches import left_pad, trim_padding
from rclrec.eval.ranking import mask_unrankable


@dataclass
class Recommendation:
    """Top items for one history, best first, with their scores (dot products)."""

    items: list[str]
    scores: list[float]
    unknown: list[str] = field(default_factory=list)  # history items the model does not know


class Recommender:
    """A trained encoder and its item vocabulary, ready to score histories."""

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
        self._lock = threading.Lock()  # one forward pass at a time (HTTP threads share it)

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str = "cpu") -> Recommender:
        """Load ``run_dir/model.pt``; runs saved before model.pt kept the item ids read them
        from the run's dataset."""
        from rclrec.experiment import load_data, model_from_saved, pick_device, read_model_file

        dev = pick_device(device)
        saved = read_model_file(run_dir)
        encoder, cfg = model_from_saved(saved, dev)
        item_ids = saved.get("item_ids")
        if item_ids is None:
            dataset = load_data(cfg)
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
        if not rows:
            return out
        seqs = [known[r] for r in rows]
        (window,) = trim_padding(left_pad(seqs, self.max_len))
        history = None
        if exclude_history:  # every item of the history, not only the last max_len
            history = torch.from_numpy(left_pad(seqs, max(len(s) for s in seqs))).to(self.device)
        with self._lock, torch.no_grad():
            states = self.encoder.last_state(torch.from_numpy(window).to(self.device))
            scores = mask_unrankable(states @ self.encoder.item_table.T, history)
            top = torch.topk(scores, k, dim=1)
        values, ids = top.values.cpu().numpy(), top.indices.cpu().numpy()
        for j, r in enumerate(rows):
            keep = np.isfinite(values[j])  # fewer than k items left after the exclusions
            out[r].items = [self.item_ids[i - 1] for i in ids[j][keep]]
            out[r].scores = [float(v) for v in values[j][keep]]
        return out


def parse_request(payload: object, default_k: int) -> tuple[list[list[str]], int, bool]:
    """``{"history": [...]}`` or ``{"histories": [[...], ...]}``, optional ``k`` and
    ``exclude_history``; a ValueError names what is wrong."""
    if not isinstance(payload, dict):
        raise ValueError("the request must be a JSON object")
    if ("history" in payload) == ("histories" in payload):
        raise ValueError('give exactly one of "history" (a list of item ids) or "histories"')
    histories = [payload["history"]] if "history" in payload else payload["histories"]
    if not isinstance(histories, list) or not all(isinstance(h, list) for h in histories):
        raise ValueError('"history" must be a list of item ids ("histories" a list of those)')
    k = payload.get("k", default_k)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f'"k" must be an integer >= 1, got {k!r}')
    exclude = payload.get("exclude_history", True)
    if not isinstance(exclude, bool):
        raise ValueError(f'"exclude_history" must be true or false, got {exclude!r}')
    return [[str(i) for i in h] for h in histories], k, exclude


def make_server(recommender: Recommender, host: str = "127.0.0.1", port: int = 8080,
                default_k: int = 10) -> ThreadingHTTPServer:
    """An HTTP server: ``POST /recommend`` (JSON, see :func:`parse_request`) answers
    ``{"recommendations": [{"items", "scores", "unknown"}, ...]}``; ``GET /health``."""

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: HTTPStatus, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path == "/health":
                self._send(HTTPStatus.OK, {"status": "ok", "items": len(recommender.item_ids)})
            else:
                self._send(HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path}; "
                                                  "use POST /recommend or GET /health"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/recommend":
                self._send(HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path}"})
                return
            try:
                length = int(self.headers.get("Content-Length", 0))
                payload = json.loads(self.rfile.read(length) or b"null")
                histories, k, exclude = parse_request(payload, default_k)
            except (ValueError, json.JSONDecodeError) as e:
                self._send(HTTPStatus.BAD_REQUEST, {"error": str(e)})
                return
            recs = recommender.recommend(histories, k, exclude)
            self._send(HTTPStatus.OK, {"recommendations": [asdict(r) for r in recs]})

        def log_message(self, format: str, *args) -> None:  # noqa: A002
            pass  # one line per request on stderr would drown the caller's output

    return ThreadingHTTPServer((host, port), Handler)
