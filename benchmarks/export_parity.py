"""Exported models against PyTorch on a run's real test histories: score differences, export
time and scoring time per batch (ONNX in onnxruntime, TorchScript, eager PyTorch; one process).

    python benchmarks/export_parity.py --runs runs/beauty-sasrec runs/beauty-fmlp
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rclrec import export
from rclrec.data.batches import left_pad
from rclrec.data.split import leave_one_out
from rclrec.model_file import load_model
from rclrec.provenance import git_commit
from rclrec.run import load_data

ROOT = Path(__file__).resolve().parent.parent


def seconds_per_batch(score, history: np.ndarray, batch: int, repeats: int) -> float:
    """Median seconds to score one batch of ``batch`` histories."""
    rows = history[:batch]
    score(rows)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        score(rows)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def max_difference(score, model, history: np.ndarray, chunk: int = 1024) -> tuple[float, float]:
    """(max |exported - PyTorch| score, max |PyTorch score|) over all histories, by chunks (all
    of Beauty's users x items at once would hold gigabytes)."""
    difference = largest = 0.0
    for start in range(0, len(history), chunk):
        rows = history[start:start + chunk]
        with torch.no_grad():
            want = model(torch.from_numpy(rows))[0].numpy()
        difference = max(difference, float(np.abs(score(rows)[0] - want).max()))
        largest = max(largest, float(np.abs(want).max()))
    return difference, largest


def measure(run_dir: str, batch: int, repeats: int) -> list[dict]:
    encoder, cfg = load_model(run_dir)
    history = left_pad(leave_one_out(load_data(cfg)).test_inputs(), cfg.encoder.max_len)
    model = export.ScoringModel(encoder)

    def eager(rows):
        with torch.no_grad():
            return model(torch.from_numpy(rows))

    rows = [{"run": run_dir, "format": "pytorch (eager)", "users": len(history),
             "seconds_per_batch": seconds_per_batch(eager, history, batch, repeats)}]
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in export.FORMATS:
            out = Path(tmp) / f"model{export.SUFFIX[fmt]}"
            started = time.perf_counter()
            export.export_run(run_dir, fmt, out)
            export_seconds = time.perf_counter() - started
            if fmt == "onnx":
                import onnxruntime

                session = onnxruntime.InferenceSession(str(out))

                def score(rows, session=session):
                    return session.run(["scores"], {"history": rows})
            else:
                module = torch.jit.load(str(out))

                def score(rows, module=module):
                    with torch.no_grad():
                        return [t.numpy() for t in module(torch.from_numpy(rows))]
            difference, largest = max_difference(score, model, history)
            rows.append({
                "run": run_dir, "format": fmt, "users": len(history),
                "export_seconds": round(export_seconds, 1),
                "file_mb": round(out.stat().st_size / 2**20, 2),
                "max_abs_score_difference": difference,
                "max_abs_score": largest,
                "seconds_per_batch": seconds_per_batch(score, history, batch, repeats),
            })
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="finished run directories")
    parser.add_argument("--batch", type=int, default=256, help="histories per timed batch")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--name", default="export_parity")
    args = parser.parse_args()
    rows = [row for run in args.runs for row in measure(run, args.batch, args.repeats)]
    result = {"rows": rows, "batch": args.batch, "threads": torch.get_num_threads(),
              "cpu": platform.machine(), "torch": torch.__version__, "git_commit": git_commit(),
              "command": "python benchmarks/export_parity.py " + " ".join(sys.argv[1:])}
    out = ROOT / "benchmarks" / "results" / f"{args.name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        print(json.dumps(row))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
