"""Finished runs' test metrics beside the paper's rows (Table 2, or Table 3 for FMLP-Rec).

``rclrec compare RUN...``: the last step of ``make run``, which trains SASRec and RCL on Beauty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rclrec.files import read_json
from rclrec.grid import paper

NAMES = {"sasrec": "SASRec", "rcl": "RCL", "cl4srec": "CL4SRec", "duorec": "DuoRec",
         "ct4rec": "CT4Rec", "mclrec": "MCLRec", "contrarec": "ContraRec", "hpm": "HPM"}


def read_metrics(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist (is {run_dir} a finished run?)")
    return read_json(path)


def comparison_table(run_dirs: list[str | Path]) -> str:
    """One row per run (test metrics at its best validation epoch), then the paper's rows for
    the same datasets, encoders and methods, as plain text."""
    runs = [read_metrics(d) for d in run_dirs]
    header = f"{'test, full ranking':<44}" + "".join(f"{m:>9}" for m in paper.METRICS)
    lines = [header]
    for run in runs:
        label = (f"{label_of(run['method'], run['encoder'])}, {run['dataset']}, ours (seed "
                 f"{run['seed']}, epoch {run['best_epoch']}/{run['epochs_run']})")
        lines.append(f"{label:<44}" + "".join(f"{run['test'][m]:9.4f}" for m in paper.METRICS))
    shown = set()
    for run in runs:
        key = (run["dataset"], run["encoder"], run["method"])
        values = [paper.table2_value(run["dataset"], run["method"], m, run["encoder"])
                  for m in paper.METRICS]
        if key in shown or None in values:
            continue
        shown.add(key)
        table = "Table 3" if run["encoder"] == "fmlp" else "Table 2"
        label = f"{label_of(run['method'], run['encoder'])}, {run['dataset']}, paper ({table})"
        lines.append(f"{label:<44}" + "".join(f"{v:9.4f}" for v in values))
    if any(r["method"] == r["encoder"] == "sasrec" and r["config"]["train"]["loss"] == "ce"
           for r in runs):
        lines.append("note: our SASRec trains with full-softmax CE; the paper's SASRec row is a "
                     "BCE model (docs/RESULTS.md)")
    return "\n".join(lines)


def label_of(method: str, encoder: str) -> str:
    name = NAMES.get(method, method)
    if encoder == "fmlp":
        return "FMLP-Rec" if method == "sasrec" else f"FMLP-Rec + {name}"
    return name
