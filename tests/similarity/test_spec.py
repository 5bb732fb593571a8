"""A run's RCL section -> index settings, in one place (rclrec/similarity/spec.py)."""

from __future__ import annotations

import numpy as np
import pytest

from rclrec.config import ConfigError
from rclrec.methods.rcl import RCLConfig
from rclrec.similarity import IndexSpec, build_index, index_for_config
from rclrec.similarity.spec import spec_of


def data(n: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(1, 12, size=rng.integers(1, 9)) for _ in range(n)]
    return inputs, rng.integers(1, 20, size=n)


def test_the_rcl_section_reaches_the_index_with_its_ngram_size(tmp_path):
    inputs, targets = data()
    rcl = RCLConfig(similarity="ngram", ngram=3, alpha=0.2, selection="global",
                    max_neighbours=7)
    index = index_for_config(inputs, targets, rcl, cache_dir=tmp_path)
    assert (index.info["n"], index.info["alpha"], index.info["selection"],
            index.info["max_neighbours"]) == (3, 0.2, "global", 7)
    direct = build_index(inputs, targets, IndexSpec("ngram", alpha=0.2, selection="global",
                                                    max_neighbours=7, ngram=3))
    for name in ("indptr", "indices", "scores"):
        np.testing.assert_array_equal(getattr(index, name), getattr(direct, name))
    bigrams = index_for_config(inputs, targets, RCLConfig(
        similarity="ngram", ngram=2, alpha=0.2, selection="global", max_neighbours=7),
        cache_dir=tmp_path)
    assert not bigrams.info["cache_hit"]  # n keys the cache: not the 3-gram file


def test_semantic_reads_the_representations_and_is_never_cached(tmp_path):
    inputs, targets = data()
    reps = np.random.default_rng(1).normal(size=(len(inputs), 4))
    index = index_for_config(inputs, targets, RCLConfig(similarity="semantic", alpha=0.1),
                             representations=reps, cache_dir=tmp_path)
    assert index.nnz > 0 and not list(tmp_path.iterdir())
    # Other metrics ignore representations (the analysis passes them whatever the metric).
    jaccard = index_for_config(inputs, targets, RCLConfig(similarity="jaccard"),
                               representations=reps, cache_dir=tmp_path)
    assert jaccard.metric == "jaccard"


def test_an_index_reports_the_spec_it_was_built_with():
    inputs, targets = data()
    for spec in (IndexSpec("ngram", alpha=0.3, max_neighbours=4, ngram=1,
                           exclude_same_target=False),
                 IndexSpec("jaccard", selection="global", candidate_budget=50),
                 IndexSpec("levenshtein", approx=True, approx_candidates=9)):
        assert IndexSpec.of_index(spec.metric, build_index(inputs, targets, spec).info) == spec
    assert spec_of(RCLConfig()) == IndexSpec("ngram", alpha=0.05, max_neighbours=256, ngram=2)


@pytest.mark.parametrize(("bad", "named"), [
    ({"metric": "cosine"}, "metric"), ({"alpha": 1.5}, "alpha"),
    ({"selection": "col"}, "selection"),
    ({"max_neighbours": 0}, "max_neighbours"), ({"ngram": 0}, "n-gram"),
    ({"metric": "jaccard", "approx": True}, "approx")])
def test_bad_settings_are_named(bad, named):
    with pytest.raises(ConfigError, match=named):
        IndexSpec(**bad)
