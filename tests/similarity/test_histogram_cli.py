"""Figure 1 histogram and the `similarity` subcommand."""

from __future__ import annotations

import argparse
import json

import numpy as np

from rclrec.similarity import (
    IndexSpec,
    alpha_cut,
    build_index,
    different_target_pair_histogram,
    plot_histogram,
    weak_candidate_counts,
)
from rclrec.similarity import cli as similarity_cli

from .similarity_reference import similarity_matrix


def test_histogram_matches_brute_force():
    rng = np.random.default_rng(0)
    inputs = [rng.integers(1, 6, size=rng.integers(1, 5)) for _ in range(50)]
    targets = rng.integers(0, 3, size=50)
    result = different_target_pair_histogram(inputs, targets, "jaccard")
    sim = similarity_matrix(inputs, "jaccard")
    edges = np.float32([0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    want = np.zeros(5, dtype=int)
    for i in range(50):
        for j in range(i + 1, 50):
            if targets[i] != targets[j] and sim[i, j] >= edges[0]:
                want[min(np.searchsorted(edges, sim[i, j], side="right") - 1, 4)] += 1
    assert result["counts"] == want.tolist()
    assert result["bins"][0] == [0.5, 0.6] and len(result["bins"]) == 5
    assert sum(result["counts"]) <= result["pairs_different_target"]


def test_plot_histogram_writes_png(tmp_path):
    inputs = [np.array([1, 2]), np.array([1, 2]), np.array([1, 3]), np.array([2, 3, 4])]
    targets = np.array([1, 2, 3, 4])
    hist = {m: different_target_pair_histogram(inputs, targets, m) for m in ("jaccard", "ngram")}
    assert hist["ngram"]["counts"][-1] == 1
    plot_histogram(hist, tmp_path / "h.png")
    plot_histogram(hist["jaccard"], tmp_path / "one.png")
    for name in ("h.png", "one.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_builds_then_loads_from_cache(tmp_path, capsys):
    data = tmp_path / "tiny.txt"
    rng = np.random.default_rng(0)
    data.write_text("".join(
        f"{u} " + " ".join(map(str, rng.integers(1, 12, size=rng.integers(4, 9)))) + "\n"
        for u in range(1, 31)))
    parser = argparse.ArgumentParser()
    similarity_cli.add_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "wp.npz"
    argv = ["similarity", "--dataset", str(data), "--metric", "jaccard", "--alpha", "0.1",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--json", "--quiet"]
    assert similarity_cli.run(parser.parse_args(argv)) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("metric", "sequences", "neighbours_total", "seconds", "peak_rss_mb",
                "share_with_weak", "share_with_strong"):
        assert key in first
    assert first["sequences"] == 30 and not first["cache_hit"]
    with np.load(out) as z:
        assert z["indptr"].shape == (31,) and z["indptr"][-1] == first["neighbours_total"]
        assert z["indices"].dtype == np.int32 and z["scores"].dtype == np.float32
    assert similarity_cli.run(parser.parse_args(argv)) == 0
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert second["cache_hit"] and second["neighbours_total"] == first["neighbours_total"]
    argv2 = argv[:4] + ["ngram", "--n", "3", "--selection", "global"] + argv[5:]
    assert similarity_cli.run(parser.parse_args(argv2)) == 0
    third = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert third["metric"] == "ngram" and third["n"] == 3 and not third["cache_hit"]


def test_weak_candidate_counts_match_brute_force_and_the_uncut_index():
    rng = np.random.default_rng(1)
    inputs = [rng.integers(1, 8, size=rng.integers(1, 6)) for _ in range(60)]
    targets = rng.integers(0, 4, size=60)
    for metric in ("jaccard", "ngram"):
        counts = weak_candidate_counts(inputs, targets, metric)
        sim = similarity_matrix(inputs, metric)
        want = [sum(1 for j in range(60) if j != i and targets[j] != targets[i] and sim[i, j] > 0)
                for i in range(60)]
        assert counts.tolist() == want
        index = build_index(inputs, targets, IndexSpec(metric, alpha=1.0, max_neighbours=60))
        assert index.degrees().tolist() == want


def test_alpha_cut_counts_rows_with_more_candidates_than_k():
    counts = np.array([0, 1, 2, 5, 9, 0, 3, 4, 1, 0, 2])  # N = 11: k = ceil(alpha * 10)
    cut = alpha_cut(counts, [0.1, 0.25, 1.0])
    assert cut["k"] == [1, 3, 10]
    assert cut["share_cut"] == [6 / 11, 3 / 11, 0.0]
    assert cut["candidates"]["share_none"] == 3 / 11 and cut["candidates"]["max"] == 9


def test_cli_refuses_a_bad_candidate_budget_in_one_line(tmp_path, capsys):
    from rclrec.cli import main

    data = tmp_path / "tiny.txt"
    data.write_text("".join(f"{u} 1 2 3 {u % 5 + 4}\n" for u in range(1, 11)))
    base = ["similarity", "--dataset", str(data), "--no-cache", "--quiet"]
    assert main(base + ["--metric", "jaccard", "--candidate-budget", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rclrec similarity: error: candidate_budget")
    assert main(base + ["--metric", "jaccard", "--candidate-budget", "50", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["candidate_budget"] == 50 and result["sequences"] == 10
