"""``rclrec similarity``: build (or load from the cache) the weak-positive index of a dataset.

Example::

    rclrec similarity --dataset beauty --metric ngram --n 2 --alpha 0.05 --out wp.npz --json

Row i of the index is the i-th user of the dataset file (file order); its neighbours, as 0-based
row numbers, are ``indices[indptr[i]:indptr[i + 1]]``. Similarities are computed on the input
items of each training sequence (leave-one-out train[:-1]); the target is train[-1].
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from rclrec.similarity.measures import METRICS


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``similarity`` subcommand on an argparse subparsers object."""
    p = subparsers.add_parser(
        "similarity", help="build the weak-positive similarity index",
        description="Build or load the top-alpha similar sequences of every training sequence "
                    "(RCL weak positives) and report coverage.")
    p.add_argument("--dataset", required=True, help="dataset name or file path")
    p.add_argument("--metric", default="ngram", choices=[m for m in METRICS if m != "semantic"],
                   help="similarity metric [ngram]")
    p.add_argument("--n", type=int, default=2, help="n-gram size for --metric ngram [2]")
    p.add_argument("--alpha", type=float, default=0.05, help="top alpha fraction [0.05]")
    p.add_argument("--selection", default="row", choices=["row", "global"],
                   help="per-row top alpha (paper) or one global threshold (official code) "
                        "[row]")
    p.add_argument("--max-neighbours", dest="max_neighbours", type=int, default=256,
                   help="cap on neighbours per sequence [256]")
    p.add_argument("--keep-same-target", dest="keep_same_target", action="store_true",
                   help="allow same-target sequences as weak positives (excluded by default)")
    p.add_argument("--approx", action="store_true",
                   help="levenshtein: score only each row's top Jaccard candidates")
    p.add_argument("--candidate-budget", dest="candidate_budget", type=int, default=None,
                   help="approximate, for very skewed data: posting entries scanned per row "
                        "(rarest items first); default exact")
    p.add_argument("--dask-scheduler", dest="dask_scheduler", default=None,
                   help="build on a Dask cluster at this address (tcp://host:8786; "
                        "pip install rclrec[distributed])")
    p.add_argument("--data-dir", dest="data_dir", help="directory searched first for datasets")
    p.add_argument("--cache-dir", dest="cache_dir", default=None,
                   help="index cache directory [$RCLREC_CACHE/similarity or "
                        "~/.cache/rclrec/similarity]")
    p.add_argument("--no-cache", dest="no_cache", action="store_true", help="always rebuild")
    p.add_argument("--out", help="also write the index as .npz (indptr, indices, scores)")
    p.add_argument("--json", action="store_true", help="end with one JSON line")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def coverage(index, targets: np.ndarray) -> dict:
    """Share of sequences with at least one weak positive and with at least one strong one."""
    targets = np.asarray(targets)
    _, inverse, counts = np.unique(targets, return_inverse=True, return_counts=True)
    has_strong = counts[inverse] > 1
    has_weak = index.degrees() > 0
    return {"share_with_weak": float(has_weak.mean()),
            "share_with_strong": float(has_strong.mean()),
            "share_with_neither": float((~has_weak & ~has_strong).mean()),
            "mean_neighbours": float(index.degrees().mean())}


def run(args: argparse.Namespace) -> int:
    """Build or load the index; print a summary (and a JSON line with ``--json``)."""
    from rclrec.config import ConfigError
    from rclrec.data.registry import load_dataset
    from rclrec.data.split import contrast_units, leave_one_out
    from rclrec.provenance import peak_rss_mb
    from rclrec.similarity.index import build_index, default_cache_dir
    from rclrec.similarity.spec import BuildOptions, IndexSpec

    t0 = time.perf_counter()
    ds = load_dataset(args.dataset, data_dir=args.data_dir)
    inputs, targets = contrast_units(leave_one_out(ds).train)
    client = None
    if args.dask_scheduler:
        try:
            from dask.distributed import Client
        except ImportError as e:
            raise ConfigError("--dask-scheduler needs dask: pip install "
                              "rclrec[distributed]") from e
        client = Client(args.dask_scheduler)
    try:
        spec = IndexSpec(args.metric, alpha=args.alpha, selection=args.selection,
                         max_neighbours=args.max_neighbours, ngram=args.n,
                         exclude_same_target=not args.keep_same_target, approx=args.approx,
                         candidate_budget=args.candidate_budget)
        index = build_index(
            inputs, targets, spec,
            cache_dir=None if args.no_cache else (args.cache_dir or default_cache_dir()),
            data_hash=ds.content_hash(),
            build=BuildOptions(show_progress=not args.quiet, client=client))
    except ValueError as e:  # a setting the index refuses (e.g. --candidate-budget 0)
        raise ConfigError(str(e)) from e
    finally:
        if client is not None:
            client.close()
    seconds = time.perf_counter() - t0
    if args.out:
        index.save(args.out)
    result = {"dataset": ds.name, "metric": args.metric, **spec.params(),
              "alpha": args.alpha, "selection": args.selection, "approx": args.approx,
              "candidate_budget": args.candidate_budget,
              "sequences": index.num_rows, "neighbours_total": index.nnz,
              "k": index.info.get("k"), "threshold": index.info.get("threshold"),
              "cache_hit": bool(index.info.get("cache_hit")),
              "build_seconds": index.info.get("seconds"), "seconds": seconds,
              "peak_rss_mb": peak_rss_mb(), **coverage(index, targets)}
    print(f"{args.metric} index of {ds.name}: {result['sequences']} sequences, "
          f"{result['neighbours_total']} neighbours "
          f"({'loaded from cache' if result['cache_hit'] else 'built'}) in {seconds:.1f}s; "
          f"with a weak positive {result['share_with_weak']:.1%}, with a strong one "
          f"{result['share_with_strong']:.1%}", file=sys.stderr if args.json else sys.stdout)
    if args.out:
        print(f"written: {Path(args.out)}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(result))
    return 0
