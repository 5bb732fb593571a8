"""Loading a large raw log: today's reader against pyarrow and polars (time and peak RSS).

Question: which columnar library should read raw logs, and does a 10M-row log load in seconds
within a memory that lets a 100M-row Parquet log fit 24 GB?

    python benchmarks/log_loading.py --rows 10000000 --work /tmp/logbench
    python benchmarks/log_loading.py --rows 100000000 --work /tmp/logs100m --readers rclrec \
        --formats parquet        # 2.3 GB of Parquet; delete the folder afterwards

It writes a synthetic log (string user and item ids, ISO 8601 times, seed 0) as CSV and
Parquet (--formats) under --work, then runs every reader on every file in a fresh process (so
that peak RSS is its own) and writes benchmarks/results/log_loading_<rows>.json (--out).
Readers:

- ``baseline``: ``read_raw_log`` (sort, 5-core, remap included) of the code at
  --baseline-commit, exported with ``git archive``;
- ``rclrec``: ``read_raw_log`` of the checked-out code (pyarrow, same steps);
- ``pyarrow`` / ``polars``: the load alone, as the readers need it: user and item codes in
  id order and times in seconds, as NumPy arrays (the part where the libraries differ).

polars is not an rclrec dependency (``pip install polars`` to include it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
READERS = ("baseline", "rclrec", "pyarrow", "polars")


def make_log(work: Path, rows: int, seed: int = 0,
             formats: tuple[str, ...] = ("csv", "parquet")) -> dict[str, Path]:
    """A log with Zipf-like item popularity; written once per size, seed and format.

    Written a row group (2**20 rows) at a time, so that a 100M-row log fits in memory while it
    is made: only three int32 codes a row are held for the whole log, the text of one group at
    a time. The draws are those of one draw per column over all rows (NumPy's generator gives
    the same numbers drawn in pieces), so earlier logs of the same size and seed are unchanged.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    paths = {fmt: work / f"log_{rows}_{seed}.{fmt}" for fmt in formats}
    if all(p.exists() for p in paths.values()):
        return paths
    rng = np.random.default_rng(seed)
    num_users, num_items = max(rows // 20, 1), max(rows // 100, 1)
    block = 2**20
    pieces = [(start, min(start + block, rows)) for start in range(0, rows, block)]
    users, items, seconds = (np.empty(rows, np.int32) for _ in range(3))
    for a, b in pieces:
        users[a:b] = rng.integers(0, num_users, b - a)
    for a, b in pieces:
        items[a:b] = num_items * rng.random(b - a) ** 2  # popular items first
    start = np.datetime64("2023-01-01T00:00:00", "s").astype(np.int64)
    for a, b in pieces:
        seconds[a:b] = rng.integers(start, start + 365 * 86400, b - a) - start

    user_names = pa.array([f"user_{i:08d}" for i in range(num_users)])
    item_names = pa.array([f"item_{i:08d}" for i in range(num_items)])
    schema = pa.schema([("user_id", pa.string()), ("item_id", pa.string()),
                        ("timestamp", pa.string())])
    work.mkdir(parents=True, exist_ok=True)
    partial = {fmt: p.with_name(p.name + ".partial") for fmt, p in paths.items()}
    writers = {}
    if "csv" in paths:
        writers["csv"] = pacsv.CSVWriter(partial["csv"], schema,
                                         write_options=pacsv.WriteOptions(quoting_style="needed"))
    if "parquet" in paths:
        writers["parquet"] = pq.ParquetWriter(partial["parquet"], schema)
    for a, b in pieces:
        when = (seconds[a:b].astype(np.int64) + start).astype("datetime64[s]")
        table = pa.table({
            "user_id": pa.DictionaryArray.from_arrays(users[a:b], user_names).cast(pa.string()),
            "item_id": pa.DictionaryArray.from_arrays(items[a:b], item_names).cast(pa.string()),
            "timestamp": pc.strftime(pa.array(when), "%Y-%m-%dT%H:%M:%S")}, schema=schema)
        for writer in writers.values():
            writer.write_table(table)
    for fmt, writer in writers.items():
        writer.close()
        partial[fmt].rename(paths[fmt])  # a stopped run leaves no file that looks complete
    return paths


def load_pyarrow(path: Path):
    from rclrec.data import logs

    wanted = {"user_col": "user_id", "item_col": "item_id", "time_col": "timestamp"}
    if path.suffix == ".parquet":
        log = logs._read_parquet(path, wanted, "error")
    else:
        log = logs._read_delimited(path, wanted, None, None, "error")
    return log.user_codes, log.item_codes, log.times


def load_polars(path: Path):
    import polars as pl

    columns = ["user_id", "item_id", "timestamp"]
    frame = (pl.read_parquet(path, columns=columns) if path.suffix == ".parquet"
             else pl.read_csv(path, columns=columns))

    def codes(name: str) -> np.ndarray:
        # Codes in id order, as the pyarrow path makes them: the sorted distinct ids become
        # the categories of an Enum, whose physical values are then the codes.
        ids = frame[name].unique().sort()
        return frame[name].cast(pl.Enum(ids)).to_physical().to_numpy()

    times = (frame["timestamp"].str.to_datetime("%Y-%m-%dT%H:%M:%S").dt.epoch("s")
             .cast(pl.Float64).to_numpy())
    return codes("user_id"), codes("item_id"), times


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss it does not carry the parent's peak
    across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(reader: str, path: Path) -> dict:
    """One reader on one file, in this process."""
    if reader in ("baseline", "rclrec"):
        from rclrec.data import io

        read = getattr(io, "read_raw_log", None)  # where the baseline had it
        if read is None:
            from rclrec.data.logs import read_raw_log as read
        kwargs = {"user_col": "user_id", "item_col": "item_id", "time_col": "timestamp"}
        load = lambda: read(path, k_core=5, **kwargs)  # noqa: E731
    else:
        load = {"pyarrow": lambda: load_pyarrow(path), "polars": lambda: load_polars(path)}[
            reader]
    # Libraries are imported first: the figures are the load's own time and memory.
    import pyarrow.csv  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    if reader == "polars":
        import polars  # noqa: F401
    rss_before = peak_rss_mb()
    began = time.perf_counter()
    result = load()
    seconds = time.perf_counter() - began
    peak = peak_rss_mb()
    out = {"reader": reader, "file": path.name, "seconds": round(seconds, 2),
           "peak_rss_mb": round(peak, 1), "rss_before_mb": round(rss_before, 1)}
    if reader in ("baseline", "rclrec"):
        out.update(users=result.num_users, items=result.num_items,
                   interactions=result.num_interactions)
    return out


def run_all(args: argparse.Namespace) -> int:
    paths = make_log(Path(args.work), args.rows, formats=tuple(args.formats))
    baseline_dir = Path(tempfile.mkdtemp(prefix="rclrec-baseline-"))
    archive = subprocess.run(["git", "archive", args.baseline_commit, "rclrec"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(baseline_dir)], input=archive, check=True)
    results = []
    for fmt, path in paths.items():
        if fmt not in args.formats:
            continue
        for reader in args.readers:
            if reader == "baseline" and fmt == "parquet" and args.skip_baseline_parquet:
                continue
            env = dict(os.environ, PYTHONPATH=str(baseline_dir if reader == "baseline"
                                                  else ROOT))
            done = subprocess.run([sys.executable, __file__, "--one", reader, str(path)],
                                  env=env, capture_output=True, text=True)
            if done.returncode:
                print(f"{reader} {fmt}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row["bytes_per_row"] = round((row["peak_rss_mb"] - row["rss_before_mb"])
                                         * 2**20 / args.rows)
            results.append(row)
            print(json.dumps(row), flush=True)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines()
                  if line.startswith("Model name")), platform.processor())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    record = {"rows": args.rows, "seed": 0, "commit": commit,
              "baseline_commit": args.baseline_commit,
              "machine": f"{model}, {os.cpu_count()} cores, shared with other jobs",
              "files_mb": {fmt: round(p.stat().st_size / 2**20, 1) for fmt, p in paths.items()},
              "results": results}
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"log_loading_{args.rows}.json")
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--work", default="/tmp/logbench", help="folder for the generated logs")
    parser.add_argument("--readers", nargs="+", default=list(READERS), choices=READERS)
    parser.add_argument("--baseline-commit", default="234be05",
                        help="commit of today's reader (before the pyarrow path)")
    parser.add_argument("--skip-baseline-parquet", action="store_true")
    parser.add_argument("--formats", nargs="+", default=["csv", "parquet"],
                        choices=["csv", "parquet"], help="files to read (both are written)")
    parser.add_argument("--out", help="result file [benchmarks/results/log_loading_ROWS.json]")
    parser.add_argument("--one", nargs=2, metavar=("READER", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], Path(args.one[1]))))
        return 0
    return run_all(args)


if __name__ == "__main__":
    sys.exit(main())
