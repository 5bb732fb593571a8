"""The index build on a Dask cluster (optional extra ``rclrec[distributed]``).

Used through ``build_index(..., build=BuildOptions(client=client))``: the kernel inputs (two
CSR matrices) are broadcast to every worker once, each row block is one task
(:func:`score_block`), and the driver reads the results back in row order, so the merged CSR
index is the same as the single-machine build's (the global threshold's histograms are summed
the same way). Dask does the scheduling, transfers and retries; there is no cluster code here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from rclrec.similarity.fused import BlockResult, KernelInputs, score_block


def rows_per_task(client: Any, n: int, most: int) -> int:
    """Rows per task: at most ``most``, and at least 4 tasks per worker to balance the load."""
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    return max(1, min(most, -(-n // (4 * workers))))


def dask_mapper(client: Any, ki: KernelInputs):
    """A ``run(blocks, **kw)`` that scores row blocks on ``client``'s workers, in order."""
    shared = client.scatter(ki, broadcast=True)

    def run(blocks: list[np.ndarray], **kw) -> Iterator[BlockResult]:
        futures = client.map(score_block, [shared] * len(blocks), blocks, pure=False, **kw)
        for future in futures:
            yield future.result()
            future.release()  # the driver holds the result; free the worker's copy

    return run
