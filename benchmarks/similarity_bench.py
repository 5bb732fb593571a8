"""Benchmarks of the weak-positive similarity index (rclrec.similarity).

Each part writes ``benchmarks/results/similarity_<part>.json``; a finished part is skipped on
a rerun unless ``--force``. Every timed build runs in its own subprocess, so its peak RSS is its
own. Run heavy parts one at a time, e.g.::

    nice -n 5 .venv/bin/python benchmarks/similarity_bench.py datasets authors topn
    nice -n 5 .venv/bin/python benchmarks/similarity_bench.py scale approx histogram

Parts:
    datasets   build time / peak RSS / coverage per dataset and metric (CLI path, no cache)
    authors    the official code's all-pairs Python loop (np.intersect1d) vs ours on Beauty
    topn       sparse_dot_topn vs our kernels vs SciPy blocks (tfidf / jaccard on Beauty)
    scale      synthetic Zipf data, exact jaccard top-50 at growing N
    approx     MinHash LSH recall@50 against exact on a synthetic subset
    histogram  Figure 1 counts on Beauty (jaccard, 2-gram) and a PNG
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

from rclrec.files import write_json_atomic  # noqa: E402


def machine() -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba
    import rapidfuzz
    import scipy

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "scipy": scipy.__version__, "numba": numba.__version__,
            "rapidfuzz": rapidfuzz.__version__}


def worker(argv: list[str], timeout: float = 3600) -> dict:
    """Run a sub-command of this script in a fresh process; its last stdout line is JSON."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "_worker", *argv]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def load(name: str):
    from rclrec.data.registry import load_dataset
    from rclrec.data.split import contrast_units, leave_one_out

    ds = load_dataset(name)
    return ds, *contrast_units(leave_one_out(ds).train)


def synthetic(n: int, items: int = 200_000, exponent: float = 1.0, mean_len: int = 20,
              seed: int = 0):
    """n input sequences: Poisson(mean_len) lengths (>= 1), items by Zipf(exponent) popularity."""
    rng = np.random.default_rng(seed)
    p = np.arange(1, items + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(p / p.sum())
    lengths = np.maximum(1, rng.poisson(mean_len, size=n))
    flat = np.searchsorted(cdf, rng.random(int(lengths.sum()))) + 1
    inputs = np.split(flat, np.cumsum(lengths)[:-1])
    targets = np.searchsorted(cdf, rng.random(n)) + 1
    return inputs, targets


# ------------------------------------------------------------------------------ workers


def _rss() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    """CPU seconds of this process, all threads (the machine is shared: wall time varies)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run_worker(args: list[str]) -> None:
    kind = args[0]
    if kind == "cli":  # the CLI path exactly as a user runs it
        from rclrec.similarity import cli

        parser = argparse.ArgumentParser()
        cli.add_parser(parser.add_subparsers(dest="command"))
        sys.exit(cli.run(parser.parse_args(["similarity", *args[1:], "--json", "--quiet",
                                            "--no-cache"])))
    if kind == "build":  # build_index on a dataset or synthetic data with given options
        from rclrec.similarity import build_index

        spec = json.loads(args[1])
        t0 = time.perf_counter()
        if spec.get("synthetic"):
            inputs, targets = synthetic(**spec["synthetic"])
        else:
            _, inputs, targets = load(spec["dataset"])
        t_data = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), _cpu()
        index = build_index(inputs, targets, spec["metric"], **spec.get("options", {}))
        seconds, cpu = time.perf_counter() - t0, _cpu() - c0
        if spec.get("save"):
            index.save(spec["save"])
        print(json.dumps({"spec": spec, "data_seconds": t_data, "build_seconds": seconds,
                          "build_cpu_seconds": cpu, "load_average": os.getloadavg()[0],
                          "peak_rss_mb": _rss(), "neighbours_total": index.nnz,
                          "share_with_weak": float((index.degrees() > 0).mean()),
                          "engine": index.info.get("engine")}))
        return
    if kind == "authors":  # the official code's loop on a sample of Beauty users
        _, inputs, targets = load("beauty")
        n_sample = int(args[1])
        rng = np.random.default_rng(0)
        users = rng.choice(len(inputs), size=n_sample, replace=False)
        maxlen = 50
        # their arrays: training sequence incl. its last item, truncated, left-padded with 0
        padded = []
        for u in users:
            seq = np.r_[inputs[u], targets[u]][-maxlen:]
            padded.append(np.r_[np.zeros(maxlen - len(seq), dtype=np.int64), seq])
        sim = np.zeros((n_sample, n_sample), dtype=np.int64)
        t0 = time.perf_counter()
        for i in range(n_sample):
            for j in range(n_sample):
                if i != j:
                    sim[i, j] = len(np.intersect1d(padded[i], padded[j]))
        seconds = time.perf_counter() - t0
        print(json.dumps({"sample": n_sample, "seconds": seconds, "peak_rss_mb": _rss(),
                          "pairs": n_sample * (n_sample - 1)}))
        return
    if kind == "topn":
        import scipy.sparse as sp
        from sparse_dot_topn import sp_matmul_topn

        from rclrec.similarity.measures import tfidf_matrix

        _, inputs, _ = load("beauty")
        w = tfidf_matrix(inputs).astype(np.float64)
        wt = sp.csr_matrix(w.T)
        t0 = time.perf_counter()
        c = sp_matmul_topn(w, wt, top_n=int(args[1]), n_threads=2)
        seconds = time.perf_counter() - t0
        print(json.dumps({"sparse_dot_topn_seconds": seconds, "top_n": int(args[1]),
                          "nnz": int(c.nnz), "peak_rss_mb": _rss()}))
        return
    raise SystemExit(f"unknown worker {kind}")


# ------------------------------------------------------------------------------ parts


def part_datasets(force: bool) -> None:
    path = RESULTS / "similarity_datasets.json"
    done = json.loads(path.read_text()) if path.exists() and not force else {"runs": []}
    have = {(r["dataset"], r["metric"], r["selection"]) for r in done["runs"]}
    plan = [(d, m, "row") for d in ("beauty", "lastfm", "ml-100k")
            for m in ("jaccard", "tfidf", "ngram", "levenshtein")]
    plan += [("beauty", m, "global") for m in ("jaccard", "ngram")]
    plan += [(d, m, "row") for d in ("sports", "yelp") for m in ("jaccard", "ngram")]
    for dataset, metric, selection in plan:
        if (dataset, metric, selection) in have:
            continue
        res = worker(["cli", "--dataset", dataset, "--metric", metric, "--selection", selection])
        res["dataset"] = dataset
        res["command"] = (f"rclrec similarity --dataset {dataset} --metric {metric} "
                          f"--selection {selection} --no-cache --json")
        done["runs"].append(res)
        print(f"{dataset:8} {metric:12} {selection:6} build {res['build_seconds']:.2f}s "
              f"total {res['seconds']:.2f}s rss {res['peak_rss_mb']:.0f} MB weak "
              f"{res['share_with_weak']:.3f} strong {res['share_with_strong']:.3f}", flush=True)
        done["machine"] = machine()
        write_json_atomic(path, done)


def part_authors(force: bool) -> None:
    path = RESULTS / "similarity_authors.json"
    if path.exists() and not force:
        return
    n_total = 22363
    theirs = worker(["authors", "2000"])
    ours = worker(["build", json.dumps({"dataset": "beauty", "metric": "jaccard"})])
    ours_np = worker(["build", json.dumps({"dataset": "beauty", "metric": "jaccard",
                                           "options": {"engine": "numpy"}})])
    # the official loop runs over all (U + 1)^2 ordered pairs; scale by pairs
    extrapolated = theirs["seconds"] * (n_total + 1) ** 2 / theirs["pairs"]
    result = {"authors_sample": theirs, "authors_extrapolated_seconds": extrapolated,
              "authors_dense_matrix_gb_int64": (n_total + 1) ** 2 * 8 / 1e9,
              "ours_numba": ours, "ours_scipy": ours_np,
              "ratio_numba": extrapolated / ours["build_seconds"],
              "ratio_scipy": extrapolated / ours_np["build_seconds"], "machine": machine()}
    write_json_atomic(path, result)
    print(json.dumps(result, indent=1))


def part_topn(force: bool) -> None:
    path = RESULTS / "similarity_topn.json"
    if path.exists() and not force:
        return
    rows = {}
    for metric in ("tfidf", "jaccard", "ngram"):
        for engine in ("numba", "numpy"):
            rows[f"{metric}_{engine}"] = worker(["build", json.dumps(
                {"dataset": "beauty", "metric": metric, "options": {"engine": engine}})])
    try:  # optional: pip install sparse-dot-topn (not an rclrec dependency)
        rows["tfidf_sparse_dot_topn_257"] = worker(["topn", "257"])
    except RuntimeError as e:
        rows["tfidf_sparse_dot_topn_257"] = {"error": str(e)[-300:]}
    result = {"note": "sparse_dot_topn: raw W W^T with top 257 per row (no self / same-target "
                      "exclusion, cosine only; cannot rank by Jaccard)", "runs": rows,
              "machine": machine()}
    write_json_atomic(path, result)
    print(json.dumps(result, indent=1))


def part_scale(force: bool, sizes: list[int], exponent: float) -> None:
    path = RESULTS / "similarity_scale.json"
    done = json.loads(path.read_text()) if path.exists() and not force else {"runs": []}
    have = {(r["sequences"], r["exponent"]) for r in done["runs"]}
    for n in sizes:
        if (n, exponent) in have:
            continue
        spec = {"synthetic": {"n": n, "exponent": exponent}, "metric": "jaccard",
                "options": {"alpha": 0.05, "max_neighbours": 50, "show_progress": True}}
        res = worker(["build", json.dumps(spec)], timeout=3 * 3600)
        res.update(sequences=n, exponent=exponent)
        done["runs"].append(res)
        print(f"n={n} exponent={exponent}: build {res['build_seconds']:.1f}s data "
              f"{res['data_seconds']:.1f}s rss {res['peak_rss_mb']:.0f} MB", flush=True)
        done["machine"] = machine()
        write_json_atomic(path, done)


def part_approx(force: bool, n: int, exponent: float, configs: list[str]) -> None:
    """Recall@50 of MinHash LSH (bands x rows_per_band x max_bucket) against exact."""
    path = RESULTS / "similarity_approx.json"
    done = json.loads(path.read_text()) if path.exists() and not force else {"runs": []}
    have = {(r["sequences"], r["exponent"], r["config"]) for r in done["runs"]}
    work = ROOT / "benchmarks" / ".work"
    work.mkdir(parents=True, exist_ok=True)
    exact_file = work / f"approx_exact_{n}_{exponent}.npz"
    base = {"synthetic": {"n": n, "exponent": exponent}, "metric": "jaccard"}
    exact_run = next((r["exact"] for r in done["runs"]
                      if (r["sequences"], r["exponent"]) == (n, exponent)), None)
    if exact_run is None or not exact_file.exists():
        exact_run = worker(["build", json.dumps(
            {**base, "options": {"alpha": 0.05, "max_neighbours": 50}, "save": str(exact_file)})],
            timeout=3 * 3600)
    from rclrec.similarity import SimilarityIndex

    ex = SimilarityIndex.load(exact_file)
    for config in configs:
        if (n, exponent, config) in have:
            continue
        bands, rows_per_band, max_bucket = (int(x) for x in config.split("x"))
        approx_file = work / f"approx_{n}_{exponent}_{config}.npz"
        opts = {"bands": bands, "rows_per_band": rows_per_band, "max_bucket": max_bucket}
        run = worker(["build", json.dumps(
            {**base, "options": {"alpha": 0.05, "max_neighbours": 50, "approx": True,
                                 "approx_options": opts}, "save": str(approx_file)})],
            timeout=3 * 3600)
        ap = SimilarityIndex.load(approx_file)
        hits = wanted = same_ids = 0
        for i in range(n):
            e_ids, e_s = ex.neighbours(i)
            if len(e_ids) == 0:
                continue
            a_ids, a_s = ap.neighbours(i)
            wanted += len(e_ids)
            same_ids += len(set(e_ids.tolist()) & set(a_ids.tolist()))
            # ties-aware: an approximate neighbour scoring at least the exact k-th score counts
            hits += min(len(e_ids), int((a_s >= e_s[-1]).sum()))
        res = {"sequences": n, "exponent": exponent, "config": config, "exact": exact_run,
               "approx": run, "recall_at_50": hits / max(wanted, 1),
               "recall_at_50_same_ids": same_ids / max(wanted, 1),
               "speedup": exact_run["build_seconds"] / run["build_seconds"]}
        done["runs"].append(res)
        done["machine"] = machine()
        write_json_atomic(path, done)
        print(f"approx n={n} s={exponent} {config}: recall@50 {res['recall_at_50']:.3f} "
              f"(same ids {res['recall_at_50_same_ids']:.3f}) build {run['build_seconds']:.1f}s "
              f"vs exact {exact_run['build_seconds']:.1f}s", flush=True)


def part_histogram(force: bool) -> None:
    path = RESULTS / "similarity_histogram.json"
    if path.exists() and not force:
        return
    from rclrec.similarity import different_target_pair_histogram, plot_histogram

    _, inputs, targets = load("beauty")
    hist = {}
    for metric in ("jaccard", "ngram"):
        t0 = time.perf_counter()
        hist[metric] = different_target_pair_histogram(inputs, targets, metric)
        hist[metric]["seconds"] = time.perf_counter() - t0
    plot_histogram(hist, RESULTS / "similarity_fig1_beauty.png")
    write_json_atomic(path, {"dataset": "beauty", "histograms": hist, "machine": machine()})
    print(json.dumps(hist, indent=1))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        run_worker(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("parts", nargs="+", choices=["datasets", "authors", "topn", "scale",
                                                 "approx", "histogram"])
    p.add_argument("--force", action="store_true", help="redo finished parts")
    p.add_argument("--sizes", default="100000,300000,1000000",
                   help="scale: comma-separated N [100000,300000,1000000]")
    p.add_argument("--exponent", type=float, default=1.0, help="Zipf exponent [1.0]")
    p.add_argument("--approx-n", dest="approx_n", type=int, default=100_000)
    p.add_argument("--approx-configs", dest="approx_configs", default="32x1x50",
                   help="approx: comma-separated BANDSxROWSxMAXBUCKET [32x1x50]")
    args = p.parse_args()
    for part in args.parts:
        if part == "scale":
            part_scale(args.force, [int(s) for s in args.sizes.split(",")], args.exponent)
        elif part == "approx":
            part_approx(args.force, args.approx_n, args.exponent,
                        args.approx_configs.split(","))
        else:
            globals()[f"part_{part}"](args.force)


if __name__ == "__main__":
    main()
