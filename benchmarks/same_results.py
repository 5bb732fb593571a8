"""Does a refactoring change what the methods compute? Tiny runs of every registered method.

Each method (with SASRec, and with FMLP-Rec where it trains with prefixes) trains 2 epochs of 3
steps on the synthetic data at its default settings, CPU, one thread; every epoch's losses and
statistics and the validation and test metrics go to one JSON file. Run it in two checkouts
and compare the files byte for byte (docs/RESULTS.md, "Issue 17"):

    RCLREC_CACHE=/tmp/c1 PYTHONPATH=OLD python benchmarks/same_results.py /tmp/old.json
    RCLREC_CACHE=/tmp/c2 PYTHONPATH=NEW python benchmarks/same_results.py /tmp/new.json
    cmp /tmp/old.json /tmp/new.json

Usage: same_results.py OUT.json [METHOD ...]   (default: every method of the registry)
"""

import argparse
import json
import tempfile

from rclrec.config import ConfigError, load_config
from rclrec.methods import METHODS
from rclrec.run import run_training

TINY = {"data.dataset": "synthetic", "data.max_len": "20", "encoder.hidden_dim": "16",
        "encoder.inner_dim": "32", "encoder.num_blocks": "1", "train.threads": "1",
        "train.epochs": "2", "train.batch_size": "64", "train.max_steps": "3",
        "train.eval_batch_size": "512", "rcl.similarity": "jaccard"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", help="JSON file to write")
    p.add_argument("methods", nargs="*", metavar="METHOD",
                   help="methods to run [every method of the registry]")
    args = p.parse_args()
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        p.error(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(sorted(METHODS))}")
    out = {}
    for name in args.methods or sorted(METHODS):
        for encoder in ("sasrec", "fmlp"):
            cfg = load_config(overrides={**TINY, "method": name, "encoder.name": encoder})
            with tempfile.TemporaryDirectory() as folder:
                try:
                    m = run_training(cfg, folder + "/r", show_progress=False)
                except ConfigError as e:  # the controls refuse prefix instances
                    print(name, encoder, "refused:", e, flush=True)
                    continue
            out[f"{name}/{encoder}"] = {
                "test": m["test"], "valid": m["valid"],
                "history": [{k: v for k, v in h.items() if "seconds" not in k}
                            for h in m["history"]]}
            print(name, encoder, "test NDCG@10", m["test"]["NDCG@10"], flush=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
