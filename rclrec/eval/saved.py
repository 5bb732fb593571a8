"""Evaluation of a saved run (``rclrec evaluate``): its validation and test cases again, or a
file of new test histories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rclrec.data.io import existing_file
from rclrec.data.registry import load_dataset, reader_options, split_dataset
from rclrec.data.split import evaluation_cases
from rclrec.eval.ranking import NonFiniteScores, evaluate_ranking
from rclrec.model_file import load_model_and_data, model_from_saved, read_model_file
from rclrec.run import diverged, pick_device


def evaluate_run(run_dir: str | Path, *, device: str = "auto") -> dict[str, Any]:
    """Re-evaluate a saved run on its validation and test cases.

    Raises:
        RunDiverged: the model scores some item NaN or infinite.
    """
    dev = pick_device(device)
    encoder, cfg, dataset = load_model_and_data(run_dir, dev)
    split = split_dataset(cfg.data, dataset)
    e = cfg.eval
    kw = dict(batch_size=cfg.train.eval_batch_size, device=dev, exclude_history=e.exclude_history,
              ks=e.ks)
    try:
        return {
            "run": str(run_dir),
            "valid": evaluate_ranking(encoder, split.valid_inputs(), split.valid_targets,
                                      cfg.encoder.max_len, **kw),
            "test": evaluate_ranking(encoder, split.test_inputs(), split.test_targets,
                                     cfg.encoder.max_len, **kw),
        }
    except NonFiniteScores as err:
        raise diverged(run_dir, err) from None


def evaluate_file(run_dir: str | Path, path: str | Path, *, device: str = "auto"
                  ) -> dict[str, Any]:
    """Evaluate a saved run on a file of test histories: in each user's sequence the last item
    is the target and the earlier ones the input (any data format; items named as in the
    training data; read with the run's column settings, without k-core filter)."""
    existing_file(path)  # before the model: a bad --input is named first
    dev = pick_device(device)
    saved = read_model_file(run_dir)
    encoder, cfg = model_from_saved(saved, dev)
    options = {**reader_options(cfg.data), "k_core": 0}
    cases = load_dataset(str(path), min_length=2, **options)
    item_ids = saved["item_ids"] or [str(i) for i in range(1, saved["num_items"] + 1)]
    inputs, targets, skipped = evaluation_cases(cases, item_ids)
    e = cfg.eval
    try:
        metrics = evaluate_ranking(encoder, inputs, targets, cfg.encoder.max_len,
                                   batch_size=cfg.train.eval_batch_size, device=dev,
                                   exclude_history=e.exclude_history, ks=e.ks)
    except NonFiniteScores as err:
        raise diverged(run_dir, err) from None
    return {"run": str(run_dir), "input": str(path), "cases": len(targets), "skipped": skipped,
            "test": metrics}
