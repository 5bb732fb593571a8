"""The index against a brute-force all-pairs reference, for every metric and selection mode."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rclrec.similarity import (
    BuildOptions,
    IndexSpec,
    SimilarityIndex,
    build_index,
    pair_scores,
    score_blocks,
)
from rclrec.similarity._kernels import HAVE_NUMBA
from rclrec.similarity.index import top_k_per_row

from .similarity_reference import select, similarity_matrix

EXACT = ("jaccard", "ngram", "levenshtein")  # same float32 bits as the reference: exact match


@st.composite
def datasets(draw, max_n: int = 18):
    n = draw(st.integers(2, max_n))
    items = draw(st.integers(2, 9))
    inputs = [np.array(draw(st.lists(st.integers(1, items), max_size=7)), dtype=np.int64)
              for _ in range(n)]
    targets = np.array(draw(st.lists(st.integers(1, 4), min_size=n, max_size=n)))
    return inputs, targets


def check_against_reference(index: SimilarityIndex, sim, targets, alpha, selection, cap,
                            exclude, exact: bool) -> None:
    ref, t = select(sim, targets, alpha, selection, cap, exclude)
    assert index.num_rows == len(sim)
    for i in range(index.num_rows):
        ids, scores = index.neighbours(i)
        assert len(set(ids.tolist())) == len(ids)
        assert np.all(np.diff(scores) <= 0), "best first"
        np.testing.assert_allclose(scores, sim[i, ids], atol=1e-5)
        if exact:
            assert set(ids.tolist()) == ref[i]
        else:  # float noise may reorder near-ties: compare the score multisets
            want = np.sort(sim[i, sorted(ref[i])])[::-1]
            got = np.sort(sim[i, ids])[::-1]
            if selection == "global" and len(got) != len(want):
                diff = set(ids.tolist()) ^ ref[i]
                assert all(abs(sim[i, j] - t) < 1e-5 for j in diff)
            else:
                np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("metric", ["jaccard", "tfidf", "ngram", "levenshtein", "semantic"])
@settings(max_examples=25, deadline=None)
@given(data=datasets(), alpha=st.sampled_from([0.05, 0.2, 0.5, 1.0]),
       selection=st.sampled_from(["row", "global"]), cap=st.integers(1, 20),
       exclude=st.booleans(), n=st.integers(1, 3), block=st.sampled_from([1, 7, 10_000]),
       engine=st.sampled_from(["auto", "numpy"]))
def test_index_matches_brute_force(metric, data, alpha, selection, cap, exclude, n, block,
                                   engine):
    inputs, targets = data
    reps = None
    if metric == "semantic":
        reps = np.random.default_rng(len(inputs)).normal(size=(len(inputs), 3))
    sim = similarity_matrix(inputs, metric, n=n, reps=reps)
    spec = IndexSpec(metric, alpha=alpha, selection=selection, max_neighbours=cap, ngram=n,
                     exclude_same_target=exclude)
    index = build_index(inputs, targets, spec, representations=reps,
                        build=BuildOptions(block_entries=block, workers=1, engine=engine))
    check_against_reference(index, sim, targets, alpha, selection, cap, exclude,
                            exact=metric in EXACT)


@pytest.mark.parametrize("metric", ["jaccard", "tfidf", "ngram", "levenshtein"])
@settings(max_examples=15, deadline=None)
@given(data=datasets())
def test_blocks_and_pair_scores_are_symmetric_and_match(metric, data):
    inputs, _ = data
    sim = similarity_matrix(inputs, metric)
    dense = np.zeros_like(sim)
    for b in score_blocks(inputs, metric, block_entries=3, workers=1):
        assert np.all(b.scores > 0)
        dense[b.rows, b.cols] = b.scores
    np.fill_diagonal(sim, 0)
    np.fill_diagonal(dense, 0)
    np.testing.assert_allclose(dense, sim, atol=1e-6)
    np.testing.assert_allclose(dense, dense.T, atol=1e-6)
    r, c = np.nonzero(np.ones_like(sim, dtype=bool))
    off = r != c
    got = pair_scores(inputs, metric, r[off], c[off])
    np.testing.assert_allclose(got, sim[r[off], c[off]], atol=1e-6)


def test_global_threshold_is_exact_with_many_distinct_values():
    rng = np.random.default_rng(0)
    inputs = [rng.choice(40, size=rng.integers(1, 12), replace=False) + 1 for _ in range(60)]
    targets = np.arange(60)
    sim = similarity_matrix(inputs, "tfidf")
    for alpha in (0.01, 0.05, 0.3):
        for engine in ("auto", "numpy"):
            spec = IndexSpec("tfidf", alpha=alpha, selection="global", max_neighbours=60)
            index = build_index(inputs, targets, spec,
                                build=BuildOptions(block_entries=50, engine=engine))
            ref, t = select(sim, targets, alpha, "global", 60, True)
            assert abs(index.info["threshold"] - t) < 1e-6
            check_against_reference(index, sim, targets, alpha, "global", 60, True,
                                    exact=False)


def test_top_k_per_row_prefilter_keeps_ties_in_col_order():
    rng = np.random.default_rng(1)
    rows = np.repeat(np.arange(5), 400)
    cols = np.tile(np.arange(400), 5)
    scores = (rng.integers(1, 30, size=2000) / 30).astype(np.float32)
    keep = top_k_per_row(rows, cols, scores, 17)
    for i in range(5):
        m = rows == i
        order = np.lexsort((cols[m], -scores[m]))[:17]
        assert cols[keep][rows[keep] == i].tolist() == cols[m][order].tolist()


def test_levenshtein_uses_edit_distance_over_items():
    inputs = [np.array([1, 2, 3, 4]), np.array([1, 3, 4]), np.array([5, 6]), np.array([], int)]
    index = build_index(inputs, np.array([9, 8, 7, 6]), IndexSpec("levenshtein", alpha=1.0),
                        build=BuildOptions(workers=1))
    ids, scores = index.neighbours(0)
    assert ids.tolist() == [1] and scores.tolist() == pytest.approx([0.75])
    assert index.degrees().tolist() == [1, 1, 0, 0]


def test_same_target_and_self_are_excluded_by_default():
    inputs = [np.array([1, 2]), np.array([1, 2]), np.array([1, 2])]
    index = build_index(inputs, np.array([5, 5, 6]), IndexSpec("jaccard", alpha=1.0))
    assert index.neighbours(0)[0].tolist() == [2]
    index = build_index(inputs, np.array([5, 5, 6]), IndexSpec("jaccard", alpha=1.0,
                                                               exclude_same_target=False))
    assert index.neighbours(0)[0].tolist() == [1, 2]


def test_row_k_and_cap():
    rng = np.random.default_rng(2)
    inputs = [rng.integers(1, 4, size=3) for _ in range(41)]
    targets = np.arange(41)
    index = build_index(inputs, targets, IndexSpec("jaccard", alpha=0.05))  # ceil(0.05 * 40) = 2
    assert index.info["k"] == 2 and index.degrees().max() <= 2
    index = build_index(inputs, targets, IndexSpec("jaccard", alpha=1.0, max_neighbours=5))
    assert index.degrees().max() <= 5


def test_cache_roundtrip(tmp_path):
    inputs = [np.array([1, 2, 3]), np.array([2, 3]), np.array([3, 4])]
    targets = np.array([1, 2, 3])
    a = build_index(inputs, targets, IndexSpec("ngram", alpha=1.0), cache_dir=tmp_path)
    assert not a.info["cache_hit"] and len(list(tmp_path.glob("*.npz"))) == 1
    b = build_index(inputs, targets, IndexSpec("ngram", alpha=1.0), cache_dir=tmp_path)
    assert b.info["cache_hit"]
    for name in ("indptr", "indices", "scores"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = build_index(inputs, targets, IndexSpec("ngram", alpha=1.0, ngram=1), cache_dir=tmp_path)
    assert not c.info["cache_hit"]  # parameters are part of the key
    assert b.indices.dtype == np.int32 and b.scores.dtype == np.float32
    assert b.indptr.dtype == np.int64


def skewed(n: int, seed: int, exponent: float = 1.2, items: int = 60):
    """Sequences over Zipf-popular items: a few items are in most sequences (hub items)."""
    rng = np.random.default_rng(seed)
    p = np.arange(1, items + 1, dtype=np.float64) ** -exponent
    inputs = [rng.choice(items, size=rng.integers(1, 12), p=p / p.sum()) + 1 for _ in range(n)]
    return inputs, rng.integers(0, 15, size=n)


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("metric", ["jaccard", "ngram", "tfidf"])
def test_candidate_budget_keeps_exact_scores_on_skewed_data(metric):
    for seed in range(3):
        inputs, targets = skewed(250, seed)
        sim = similarity_matrix(inputs, metric)
        exact = build_index(inputs, targets, IndexSpec(metric, alpha=0.02))
        for budget in (1, 7, 60, 10**9):
            index = build_index(inputs, targets, IndexSpec(metric, alpha=0.02,
                                                           candidate_budget=budget))
            for i in range(index.num_rows):
                ids, scores = index.neighbours(i)
                # every kept pair has its full score, popular (skipped) items included
                np.testing.assert_allclose(scores, sim[i, ids], atol=1e-6)
                if budget == 10**9:
                    np.testing.assert_allclose(scores, exact.neighbours(i)[1], atol=1e-6)


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
def test_candidate_budget_scores_exactly_and_loses_only_hub_pairs():
    inputs, targets = skewed(300, 7)
    exact = build_index(inputs, targets, IndexSpec("jaccard", alpha=0.05))
    sim = similarity_matrix(inputs, "jaccard")
    wide = build_index(inputs, targets, IndexSpec("jaccard", alpha=0.05, candidate_budget=10**9))
    np.testing.assert_array_equal(wide.indices, exact.indices)
    narrow = build_index(inputs, targets, IndexSpec("jaccard", alpha=0.05, candidate_budget=5))
    assert narrow.info["candidate_budget"] == 5
    lost = 0
    for i in range(narrow.num_rows):
        ids, scores = narrow.neighbours(i)
        np.testing.assert_array_equal(scores, sim[i, ids])  # found pairs: exact scores
        lost += len(set(exact.neighbours(i)[0].tolist()) - set(ids.tolist()))
    assert lost > 0  # a budget of 5 postings cannot reach the hub items' partners
    with pytest.raises(ValueError, match="candidate_budget"):
        build_index(inputs, targets, IndexSpec("levenshtein", candidate_budget=5))
    with pytest.raises(ValueError, match="approx"):
        build_index(inputs, targets, IndexSpec("jaccard", approx=True))


def test_levenshtein_approx_scores_jaccard_candidates_exactly():
    rng = np.random.default_rng(4)
    inputs = [rng.integers(1, 15, size=rng.integers(1, 8)) for _ in range(80)]
    targets = rng.integers(0, 10, size=80)
    one = BuildOptions(workers=1)
    exact = build_index(inputs, targets, IndexSpec("levenshtein", alpha=0.05), build=one)
    wide = build_index(inputs, targets, IndexSpec("levenshtein", alpha=0.05, approx=True,
                                                  approx_candidates=80),
                       build=one)  # every candidate: same as exact
    for name in ("indptr", "indices", "scores"):
        np.testing.assert_array_equal(getattr(exact, name), getattr(wide, name))
    narrow = build_index(inputs, targets, IndexSpec("levenshtein", alpha=0.05, approx=True,
                                                    approx_candidates=2), build=one)
    assert narrow.nnz <= exact.nnz and narrow.degrees().max() <= 2


def test_bad_arguments():
    inputs, targets = [np.array([1]), np.array([1])], np.array([1, 2])
    with pytest.raises(ValueError, match="metric"):
        build_index(inputs, targets, IndexSpec("cosine"))
    with pytest.raises(ValueError, match="alpha"):
        build_index(inputs, targets, IndexSpec(alpha=0))
    with pytest.raises(ValueError, match="selection"):
        build_index(inputs, targets, IndexSpec(selection="col"))
    with pytest.raises(ValueError, match="representations"):
        build_index(inputs, targets, IndexSpec("semantic"))
    with pytest.raises(ValueError, match="engine"):
        build_index(inputs, targets, IndexSpec(), build=BuildOptions(engine="gpu"))
    with pytest.raises(ValueError, match="numba"):
        build_index(inputs, targets, IndexSpec("levenshtein"), build=BuildOptions(engine="numba"))


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
def test_engines_agree_on_random_data():
    rng = np.random.default_rng(5)
    inputs = [rng.integers(1, 30, size=rng.integers(0, 10)) for _ in range(300)]
    targets = rng.integers(0, 20, size=300)
    for metric in ("jaccard", "ngram"):
        for selection in ("row", "global"):
            a = build_index(inputs, targets, IndexSpec(metric, alpha=0.02, selection=selection),
                            build=BuildOptions(engine="numpy", block_entries=500))
            b = build_index(inputs, targets, IndexSpec(metric, alpha=0.02, selection=selection))
            assert b.info["engine"] == "numba"
            for name in ("indptr", "indices", "scores"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def _saved(tmp_path, **arrays):
    """An index (3 rows) saved to a file, with some arrays replaced."""
    index = SimilarityIndex(np.array([0, 2, 2, 3]), np.array([1, 2, 0], np.int32),
                            np.array([0.5, 0.25, 1.0], np.float32), "jaccard")
    for name, value in arrays.items():
        setattr(index, name, np.asarray(value))
    return index.save(tmp_path / "index.npz")


@pytest.mark.parametrize("arrays, words", [
    ({"scores": [0.5, -0.25, 1.0]}, "finite and > 0"),
    ({"scores": [0.5, np.nan, 1.0]}, "finite and > 0"),
    ({"scores": [0.5, 0.0, 1.0]}, "finite and > 0"),
    ({"indptr": [0, 2, 1, 3]}, "never decrease"),
    ({"indptr": [1, 2, 2, 3]}, "start at 0"),
    ({"indptr": [0, 2, 2, 4]}, "ends at 4"),
    ({"indices": [1, 3, 0]}, "outside 0..2"),
    ({"indices": [1, -1, 0]}, "outside 0..2"),
])
def test_a_damaged_index_file_is_refused_naming_the_file(tmp_path, arrays, words):
    """The loss trusts the index's scores as weights (and cannot check them on a GPU without
    waiting for it): a cached file with a negative score, or arrays that are no CSR, is an
    error that names the file."""
    from rclrec.files import CorruptFile

    path = _saved(tmp_path, **arrays)
    with pytest.raises(CorruptFile, match=words) as caught:
        SimilarityIndex.load(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_a_truncated_index_file_is_refused_naming_the_file(tmp_path):
    from rclrec.files import CorruptFile

    path = _saved(tmp_path)
    assert SimilarityIndex.load(path).nnz == 3  # the intact file loads
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CorruptFile, match="not a similarity index written by rclrec"):
        SimilarityIndex.load(path)


def test_a_cached_index_of_other_sequences_is_refused(tmp_path):
    from rclrec.files import CorruptFile

    inputs = [np.array([1, 2]), np.array([2, 3]), np.array([1, 3]), np.array([1, 2, 3])]
    targets = np.array([4, 5, 6, 7])
    spec = IndexSpec("jaccard", alpha=1.0)
    built = build_index(inputs, targets, spec, cache_dir=tmp_path)
    path = built.info["cache_path"]
    SimilarityIndex(np.array([0, 1, 1]), np.array([1], np.int32), np.array([0.5], np.float32),
                    "jaccard").save(path)  # a valid index of 2 sequences
    with pytest.raises(CorruptFile, match="an index of 2 sequences, not 4"):
        build_index(inputs, targets, spec, cache_dir=tmp_path)
