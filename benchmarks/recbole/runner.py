"""Run RecBole 1.2.1's SASRec once and time every epoch (runs INSIDE the RecBole venv).

Started by benchmarks/recbole_side_by_side.py; not meant to be imported by rclrec. Usage:

    <recbole-venv>/bin/python benchmarks/recbole/runner.py SPEC.json

SPEC.json holds {"config": {...RecBole settings...}, "model": "SASRec", "dataset": NAME,
"threads": 1, "max_epochs": N, "wall_cap_s": S, "out": RESULT.json}. The runner builds RecBole's
Config / Dataset / Trainer itself (no quick_start, so no ray), wraps the trainer's `_train_epoch`
and `_valid_epoch` to time each epoch, stops before an epoch that would pass the wall-clock cap,
tests the best-validation checkpoint and writes RESULT.json atomically.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time


class WallCapReached(Exception):
    """Raised before an epoch that would end past the wall-clock cap."""


def _metrics(result) -> dict[str, float]:
    """RecBole's {'recall@10': ..} -> rclrec-style {'HR@10': ..} (Recall@K = HR@K, one target)."""
    out = {}
    for key, value in dict(result).items():
        name, k = key.split("@")
        name = {"recall": "HR", "hit": "Hit", "ndcg": "NDCG", "mrr": "MRR"}.get(name, name)
        out[f"{name}@{k}"] = float(value)
    return out


def main(spec_path: str) -> int:
    with open(spec_path) as f:
        spec = json.load(f)

    import torch

    # RecBole's checkpoint pickles its Config; torch >= 2.6 defaults to weights_only=True, which
    # refuses it. Only RecBole's own checkpoint files are loaded in this process.
    _load = torch.load

    def _torch_load(*args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return _load(*args, **kwargs)

    torch.load = _torch_load

    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_logger, init_seed

    config = Config(model=spec["model"], dataset=spec["dataset"], config_dict=spec["config"])
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    torch.set_num_threads(spec["threads"])

    t_data = time.perf_counter()
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    data_seconds = time.perf_counter() - t_data
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = SASRec(config, train_data._dataset).to(config["device"])
    trainer = Trainer(config, model)
    torch.set_num_threads(spec["threads"])  # again, in case anything above changed it

    history: list[dict] = []
    clock = {"start": None, "epoch_start": None, "train_end": None}
    cap = spec.get("wall_cap_s")
    orig_train, orig_valid = trainer._train_epoch, trainer._valid_epoch

    def train_epoch(train_data, epoch_idx, loss_func=None, show_progress=False):
        now = time.perf_counter()
        if clock["start"] is None:
            clock["start"] = now
        elif cap is not None and history:
            # Stop if this epoch (estimated by the last one, training plus validation) would end
            # past the cap; the last epoch's checkpoint is already written by then.
            last = history[-1]["train_seconds"] + history[-1]["valid_seconds"]
            if now - clock["start"] + last > cap:
                raise WallCapReached
        clock["epoch_start"] = now
        loss = orig_train(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        clock["train_end"] = time.perf_counter()
        return loss

    def valid_epoch(valid_data, show_progress=False):
        t0 = time.perf_counter()
        score, result = orig_valid(valid_data, show_progress=show_progress)
        t1 = time.perf_counter()
        train_seconds = clock["train_end"] - clock["epoch_start"]
        history.append({
            "epoch": len(history) + 1,
            "train_seconds": round(train_seconds, 3),
            "valid_seconds": round(t1 - t0, 3),
            "epoch_seconds": round(t1 - clock["epoch_start"], 3),
            # wall clock from the start of the first epoch to the end of this validation,
            # including RecBole's checkpoint writes and logging between epochs
            "wall_seconds": round(t1 - clock["start"], 3),
            "train_loss": float(trainer.train_loss_dict.get(len(history), float("nan"))),
            "valid": _metrics(result),
        })
        print(f"recbole epoch {len(history)}: train {train_seconds:.1f}s, valid {t1 - t0:.1f}s, "
              f"NDCG@10 {history[-1]['valid'].get('NDCG@10', float('nan')):.4f}", flush=True)
        return score, result

    trainer._train_epoch = train_epoch
    trainer._valid_epoch = valid_epoch

    cap_hit = False
    try:
        trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    except WallCapReached:
        cap_hit = True
    fit_wall = time.perf_counter() - clock["start"]
    best = max(history, key=lambda h: (h["valid"]["NDCG@10"], -h["epoch"]))
    test = _metrics(trainer.evaluate(test_data, load_best_model=True, show_progress=False))

    n_train = len(train_data._dataset)
    result = {
        "recbole_version": recbole.__version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "data_prep_seconds": round(data_seconds, 3),
        "num_users": int(dataset.user_num - 1),
        "num_items": int(dataset.item_num - 1),
        "num_interactions": int(dataset.inter_num),
        "training_instances": int(n_train),
        "steps_per_epoch": math.ceil(n_train / config["train_batch_size"]),
        "epochs_run": len(history),
        "max_epochs": spec["max_epochs"],
        "wall_cap_s": cap,
        "wall_cap_hit": cap_hit,
        "epoch_cap_hit": not cap_hit and len(history) >= spec["max_epochs"],
        "stopped_early": not cap_hit and len(history) < spec["max_epochs"],
        "fit_wall_seconds": round(fit_wall, 3),
        "best_epoch": best["epoch"],
        "best_valid": best["valid"],
        "test": test,
        "history": history,
        "checkpoint": trainer.saved_model_file,
    }
    out = spec["out"]
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, out)
    print(f"recbole: best epoch {best['epoch']} valid NDCG@10 {best['valid']['NDCG@10']:.4f}; "
          f"test NDCG@10 {test['NDCG@10']:.4f}; written {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
