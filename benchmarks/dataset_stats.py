"""Table 1 statistics of every shared dataset, written to benchmarks/results/dataset_stats.json.

    python benchmarks/dataset_stats.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rclrec.data.dataset import DataError
from rclrec.data.registry import load_dataset
from rclrec.data.stats import dataset_stats

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("beauty", "sports", "toys", "yelp", "lastfm", "ml-100k", "ml-1m")


def main() -> int:
    out = {}
    for name in NAMES:
        try:
            out[name] = dataset_stats(load_dataset(name))
        except DataError as e:
            out[name] = {"missing": str(e).split(";")[0]}
        print(name, out[name])
    path = ROOT / "benchmarks" / "results" / "dataset_stats.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
