"""Micro-batching: requests that arrive together are scored in one forward pass.

HTTP handlers put their query on a queue and wait on a future; one batcher thread takes what
has queued (up to ``max_histories`` histories; waiting at most ``max_wait_s`` for more once a
first query is there: by default not at all, since the queries that arrive during a forward
pass make the next batch, and a timed wait oversleeps on a busy machine), scores it with one
:meth:`Recommender.recommend` call per ``exclude_history`` setting and hands each request its
rows. The forward pass runs off the
event loop, one at a time, so connections keep being served while the model computes.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

from rclrec.serve.recommender import Recommendation, Recommender
from rclrec.serve.request import Query


@dataclass
class _Job:
    query: Query
    future: Future = field(default_factory=Future)


class MicroBatcher:
    """A queue of queries and the thread that answers them in batches."""

    def __init__(self, recommender: Recommender, max_histories: int = 256,
                 max_wait_s: float = 0.0) -> None:
        self.recommender = recommender
        self.max_histories = max_histories
        self.max_wait_s = max_wait_s
        self.batch_sizes: deque[int] = deque(maxlen=1000)  # histories per forward pass, latest last
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="rclrec-batcher", daemon=True)
        self._thread.start()

    def submit(self, query: Query) -> Future:
        """A future of the query's recommendations (one per history)."""
        job = _Job(query)
        self._queue.put(job)
        return job.future

    def close(self) -> None:
        """Answer what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._gather(first)
            self._answer(batch)
            if stop:
                return

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        batch, size = [first], len(first.query.histories)
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_histories:
            try:
                job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                return batch, True
            batch.append(job)
            size += len(job.query.histories)
        return batch, False

    def _answer(self, batch: list[_Job]) -> None:
        for exclude in (True, False):
            jobs = [j for j in batch if j.query.exclude_history == exclude
                    and j.future.set_running_or_notify_cancel()]
            if not jobs:
                continue
            histories = [h for j in jobs for h in j.query.histories]
            self.batch_sizes.append(len(histories))
            try:
                recs = self.recommender.recommend(histories, max(j.query.k for j in jobs),
                                                  exclude)
            except BaseException as e:  # MemoryError included: each request gets an answer
                for j in jobs:
                    j.future.set_exception(e)
                continue
            start = 0
            for j in jobs:
                mine = recs[start:start + len(j.query.histories)]
                start += len(j.query.histories)
                j.future.set_result([_first(r, j.query.k) for r in mine])


def _first(rec: Recommendation, k: int) -> Recommendation:
    """The best ``k`` of a longer top list: what a call with this k alone would give."""
    return Recommendation(rec.items[:k], rec.scores[:k], rec.unknown)
