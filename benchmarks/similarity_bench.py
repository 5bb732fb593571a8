"""Benchmarks of the weak-positive similarity index (rclrec.similarity).

Each part writes ``benchmarks/results/similarity_<part>.json``; a finished part is skipped on
a rerun unless ``--force``. Every timed build runs in its own subprocess, so its peak RSS is its
own. Run heavy parts one at a time, e.g.::

    nice -n 5 .venv/bin/python benchmarks/similarity_bench.py datasets authors topn
    nice -n 5 .venv/bin/python benchmarks/similarity_bench.py scale histogram
    nice -n 5 .venv/bin/python benchmarks/similarity_bench.py skew --sizes 1000000 --exponent 1.0

Parts:
    datasets   build time / peak RSS / coverage per dataset and metric (CLI path, no cache)
    authors    the official code's all-pairs Python loop (np.intersect1d) vs ours on Beauty
    topn       sparse_dot_topn vs our kernels vs SciPy blocks (tfidf / jaccard on Beauty)
    scale      synthetic Zipf data, exact jaccard top-50 at growing N
    skew       heavy popularity skew: per-row cost of the exact (prefix-filtered) build and of
               candidate budgets, recall@50 against exact on a sample of rows; with --full,
               the whole build (time, peak RSS) and its recall on the sample
    dask       the same build on a local Dask cluster (2 worker processes) vs one process
    floor      the work any exact build must do on the synthetic data: posting entries an
               item-by-item scan reads (sum of squared document frequencies) and candidate
               sequences per row (sharing at least one item, on a sample of rows); no build
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
        from rclrec.similarity import BuildOptions, IndexSpec, build_index

        spec = json.loads(args[1])
        t0 = time.perf_counter()
        if spec.get("synthetic"):
            inputs, targets = synthetic(**spec["synthetic"])
        else:
            _, inputs, targets = load(spec["dataset"])
        t_data = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), _cpu()
        options = spec.get("options", {})
        how = {k: options.pop(k) for k in ("engine", "block_entries", "workers", "show_progress")
               if k in options}
        index = build_index(inputs, targets, IndexSpec(spec["metric"], **options),
                            build=BuildOptions(**how))
        seconds, cpu = time.perf_counter() - t0, _cpu() - c0
        if spec.get("save"):
            index.save(spec["save"])
        print(json.dumps({"spec": spec, "data_seconds": t_data, "build_seconds": seconds,
                          "build_cpu_seconds": cpu, "load_average": os.getloadavg()[0],
                          "peak_rss_mb": _rss(), "neighbours_total": index.nnz,
                          "share_with_weak": float((index.degrees() > 0).mean()),
                          "engine": index.info.get("engine")}))
        return
    if kind == "skew":  # per-row cost and recall on a sample; optionally the whole build
        from rclrec.similarity import BuildOptions, IndexSpec, build_index
        from rclrec.similarity.fused import kernel_inputs, kernel_rows

        spec = json.loads(args[1])
        n, budget = spec["n"], spec.get("budget")
        inputs, targets = synthetic(n, exponent=spec["exponent"])
        ki = kernel_inputs(inputs, targets, "jaccard", {}, True)
        sample = np.sort(np.random.default_rng(0).choice(n, spec["sample"], replace=False))
        kernel_rows(ki, sample[:1], 50, 10)  # load the compiled kernel outside the timings
        out: dict = {"spec": spec}
        if spec.get("full"):
            t0, c0 = time.perf_counter(), _cpu()
            index = build_index(inputs, targets, IndexSpec("jaccard", alpha=0.05,
                                                           max_neighbours=50,
                                                           candidate_budget=budget))
            out.update(build_seconds=time.perf_counter() - t0, build_cpu_seconds=_cpu() - c0,
                       peak_rss_mb_build=_rss(), neighbours_total=index.nnz)
            got = [index.neighbours(i) for i in sample]
        else:
            c0 = _cpu()
            rows, cols, scores = kernel_rows(ki, sample, 50, budget)
            out["cpu_ms_per_row"] = 1000 * (_cpu() - c0) / len(sample)
            got = [(cols[rows == i], scores[rows == i]) for i in sample]
        c0 = _cpu()
        e_rows, e_cols, e_scores = kernel_rows(ki, sample, 50)  # exact reference
        out["exact_cpu_ms_per_row"] = 1000 * (_cpu() - c0) / len(sample)
        hits = same = wanted = 0
        kth = []
        for i, (a_ids, a_s) in zip(sample, got, strict=True):
            e_s, e_ids = e_scores[e_rows == i], e_cols[e_rows == i]
            if len(e_s) == 0:
                continue
            kth.append(float(e_s[-1]))
            wanted += len(e_s)
            same += len(set(e_ids.tolist()) & set(a_ids.tolist()))
            # ties-aware: a neighbour scoring at least the exact k-th score counts
            hits += min(len(e_s), int((a_s >= e_s[-1]).sum()))
        out.update(recall_at_50=hits / max(wanted, 1), recall_same_ids=same / max(wanted, 1),
                   mean_kth_score=float(np.mean(kth)) if kth else None,
                   top_item_share=float(np.mean([1 in set(s.tolist()) for s in inputs])),
                   load_average=os.getloadavg()[0], peak_rss_mb=_rss())
        print(json.dumps(out))
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


def part_skew(force: bool, sizes: list[int], exponent: float, budgets: list[int | None],
              sample: int, full: bool) -> None:
    """Heavy skew: exact (prefix-filtered) and budgeted builds, recall@50 on sampled rows."""
    path = RESULTS / "similarity_skew.json"
    done = json.loads(path.read_text()) if path.exists() and not force else {"runs": []}
    have = {(r["spec"]["n"], r["spec"]["exponent"], r["spec"].get("budget"),
             bool(r["spec"].get("full"))) for r in done["runs"]}
    for n in sizes:
        for budget in budgets:
            if (n, exponent, budget, full) in have:
                continue
            spec = {"n": n, "exponent": exponent, "budget": budget, "sample": sample,
                    "full": full}
            res = worker(["skew", json.dumps(spec)], timeout=3 * 3600)
            res["command"] = (f"benchmarks/similarity_bench.py skew --sizes {n} --exponent "
                              f"{exponent} --budgets {budget or 'exact'} --sample {sample}"
                              + (" --full" if full else ""))
            done["runs"].append(res)
            done["machine"] = machine()
            write_json_atomic(path, done)
            what = (f"build {res['build_seconds']:.0f}s cpu {res['build_cpu_seconds']:.0f}s rss "
                    f"{res['peak_rss_mb_build']:.0f} MB" if full else
                    f"{res['cpu_ms_per_row']:.2f} cpu-ms/row (exact "
                    f"{res['exact_cpu_ms_per_row']:.2f})")
            print(f"skew n={n} s={exponent} budget={budget}: {what} recall@50 "
                  f"{res['recall_at_50']:.4f} kth {res['mean_kth_score']:.3f}", flush=True)


def part_floor(force: bool, sizes: list[int], exponent: float, sample: int) -> None:
    """The size of the exact problem: posting entries scanned and candidates per row.

    Document frequencies are counted a million sequences at a time (the sequences are
    independent, so memory stays that of one chunk). The share of rows a row meets through
    some item is a property of the popularity law, not of N: it is measured on the first
    million sequences and multiplied by N.
    """
    path = RESULTS / "similarity_floor.json"
    done = json.loads(path.read_text()) if path.exists() and not force else {"runs": []}
    have = {(r["sequences"], r["exponent"]) for r in done["runs"]}
    chunk = 1_000_000
    for n in sizes:
        if (n, exponent) in have:
            continue
        df = np.zeros(200_001, dtype=np.int64)
        postings = 0
        share = None
        for part in range(0, n, chunk):
            inputs, _ = synthetic(min(chunk, n - part), exponent=exponent, seed=part)
            rows = np.repeat(np.arange(len(inputs), dtype=np.int64), [len(s) for s in inputs])
            # Distinct (sequence, item) pairs: an item repeated in a sequence is one posting.
            pairs = np.unique(rows * (1 << 20) + np.concatenate(inputs))
            del rows, inputs
            row_of, item_of = pairs >> 20, pairs & ((1 << 20) - 1)
            counts = np.bincount(item_of, minlength=len(df))
            df += counts
            postings += len(pairs)
            if share is None:
                share = candidate_share(row_of, item_of, counts, sample)
        scan = float(np.sum(df.astype(np.float64) ** 2))
        res = {"sequences": n, "exponent": exponent, "postings": postings,
               "max_document_share": float(df.max() / n), "scan_entries": scan,
               "scan_entries_per_row": scan / n, "candidate_share_of_rows": share,
               "candidates_per_row": share * (n - 1), "sample_rows": sample,
               "command": f"benchmarks/similarity_bench.py floor --sizes {n} --exponent "
                          f"{exponent} --sample {sample}"}
        done["runs"].append(res)
        done["machine"] = machine()
        write_json_atomic(path, done)
        print(f"floor n={n} s={exponent}: {scan:.3g} posting entries scanned "
              f"({res['scan_entries_per_row']:.3g} a row), candidates a row "
              f"{res['candidates_per_row']:.3g} = {share:.2f} of all rows; most popular item "
              f"in {res['max_document_share']:.2f} of rows", flush=True)


def candidate_share(row_of: np.ndarray, item_of: np.ndarray, df: np.ndarray,
                    sample: int) -> float:
    """Mean share of the other sequences that a sampled sequence shares an item with."""
    n = int(row_of[-1]) + 1
    order = np.argsort(item_of, kind="stable")
    starts = np.concatenate([[0], np.cumsum(df)])
    shares = []
    for r in np.random.default_rng(0).choice(n, size=min(sample, n), replace=False):
        items = item_of[np.searchsorted(row_of, r):np.searchsorted(row_of, r + 1)]
        met = np.concatenate([row_of[order[starts[i]:starts[i + 1]]] for i in items])
        shares.append((len(np.unique(met)) - 1) / (n - 1))  # not the row itself
    return float(np.mean(shares))


def part_dask(force: bool, n: int, exponent: float) -> None:
    """One process (numba, 2 threads) vs a LocalCluster of 2 single-thread worker processes."""
    path = RESULTS / "similarity_dask.json"
    if path.exists() and not force:
        return
    from dask.distributed import Client, LocalCluster

    from rclrec.similarity import BuildOptions, IndexSpec, build_index

    inputs, targets = synthetic(n, exponent=exponent)
    spec = IndexSpec("jaccard", alpha=0.05, max_neighbours=50)
    t0 = time.perf_counter()
    local = build_index(inputs, targets, spec)
    local_s = time.perf_counter() - t0
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        t0 = time.perf_counter()
        remote = build_index(inputs, targets, spec, build=BuildOptions(client=client))
        dask_s = time.perf_counter() - t0
    equal = all(np.array_equal(getattr(local, k), getattr(remote, k))
                for k in ("indptr", "indices", "scores"))
    result = {"sequences": n, "exponent": exponent, "local_seconds": local_s,
              "dask_seconds": dask_s, "equal": equal, "load_average": os.getloadavg()[0],
              "machine": machine(),
              "command": f"benchmarks/similarity_bench.py dask --dask-n {n} --exponent "
                         f"{exponent}"}
    write_json_atomic(path, result)
    print(json.dumps(result, indent=1))


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
                                                 "skew", "dask", "histogram", "floor"])
    p.add_argument("--force", action="store_true", help="redo finished parts")
    p.add_argument("--sizes", default="100000,300000,1000000",
                   help="scale: comma-separated N [100000,300000,1000000]")
    p.add_argument("--exponent", type=float, default=1.0, help="Zipf exponent [1.0]")
    p.add_argument("--budgets", default="exact",
                   help="skew: comma-separated candidate budgets or 'exact' [exact]")
    p.add_argument("--sample", type=int, default=200, help="skew: rows for recall [200]")
    p.add_argument("--full", action="store_true", help="skew: time the whole build")
    p.add_argument("--dask-n", dest="dask_n", type=int, default=200_000)
    args = p.parse_args()
    for part in args.parts:
        if part == "scale":
            part_scale(args.force, [int(s) for s in args.sizes.split(",")], args.exponent)
        elif part == "skew":
            budgets = [None if b == "exact" else int(b) for b in args.budgets.split(",")]
            part_skew(args.force, [int(s) for s in args.sizes.split(",")], args.exponent,
                      budgets, args.sample, args.full)
        elif part == "floor":
            part_floor(args.force, [int(s) for s in args.sizes.split(",")], args.exponent,
                       args.sample)
        elif part == "dask":
            part_dask(args.force, args.dask_n, args.exponent)
        else:
            globals()[f"part_{part}"](args.force)


if __name__ == "__main__":
    main()
