"""The index built on a local Dask cluster (2 worker processes) equals the local build."""

from __future__ import annotations

import numpy as np
import pytest

from rclrec.similarity import BuildOptions, IndexSpec, build_index

distributed = pytest.importorskip("dask.distributed")  # optional extra rclrec[distributed]


@pytest.mark.slow
def test_dask_build_equals_single_machine_build():
    rng = np.random.default_rng(0)
    p = np.arange(1, 301, dtype=np.float64) ** -1.0
    inputs = [rng.choice(300, size=rng.integers(0, 15), p=p / p.sum()) + 1 for _ in range(3000)]
    targets = rng.integers(0, 100, size=3000)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        for metric, selection in [("jaccard", "row"), ("ngram", "row"), ("tfidf", "row"),
                                  ("jaccard", "global")]:
            spec = IndexSpec(metric, alpha=0.01, selection=selection, max_neighbours=20)
            local = build_index(inputs, targets, spec)
            remote = build_index(inputs, targets, spec, build=BuildOptions(client=client))
            assert remote.info["engine"] == "numba+dask"
            for name in ("indptr", "indices", "scores"):
                np.testing.assert_array_equal(getattr(remote, name), getattr(local, name),
                                              err_msg=f"{metric} {selection} {name}")
