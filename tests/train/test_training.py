"""End-to-end training on the synthetic Markov data: learning, determinism, resume, files."""

import functools
import json

import numpy as np
import pytest
import torch

from rclrec.data.registry import load_dataset
from rclrec.data.split import leave_one_out
from rclrec.eval.metrics import metrics_from_ranks
from rclrec.eval.saved import evaluate_run
from rclrec.run import run_training
from rclrec.train.checkpoint import load_torch, save_torch_atomic

# Runs that learn the planted structure: the tiny run with a wider encoder, light dropout and
# whole epochs (each test sets their number).
LEARNING = {"encoder.hidden_dim": "32", "encoder.inner_dim": "64", "encoder.dropout": "0.1",
            "encoder.attn_dropout": "0.1", "train.batch_size": "64", "train.max_steps": "none"}


@pytest.fixture
def config(tiny_config):
    return functools.partial(tiny_config, LEARNING)


def popularity_ndcg10() -> float:
    split = leave_one_out(load_dataset("synthetic"))
    counts = np.bincount(np.concatenate(split.train), minlength=split.num_items + 1)
    counts[0] = -1
    ranks = []
    for hist, target in zip(split.test_inputs(), split.test_targets, strict=True):
        scores = counts.astype(float)
        scores[hist] = -np.inf
        scores[target] = counts[target]
        ranks.append(int((scores > scores[target]).sum()))
    return metrics_from_ranks(np.array(ranks))["NDCG@10"]


def test_sasrec_learns_the_planted_structure(tmp_path, config):
    metrics = run_training(config(train__epochs=4), tmp_path / "run", show_progress=False)
    assert metrics["test"]["NDCG@10"] > popularity_ndcg10() + 0.05


def test_same_seed_same_metrics_and_files(tmp_path, config):
    a = run_training(config(train__epochs=2), tmp_path / "a", show_progress=False)
    b = run_training(config(train__epochs=2), tmp_path / "b", show_progress=False)
    assert a["test"] == b["test"] and a["valid"] == b["valid"]
    for key in ("method", "encoder", "dataset", "seed", "epochs_run", "best_epoch",
                "train_seconds", "valid", "test", "config", "git_commit"):
        assert key in a
    for key in ("HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20", "MRR@10"):
        assert key in a["test"]
    saved = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    assert saved["config"]["train"]["seed"] == 0
    c = run_training(config(train__epochs=2, train__seed=1), tmp_path / "c", show_progress=False)
    assert c["test"] != a["test"]


def test_resume_continues_exactly(tmp_path, config):
    straight = run_training(config(train__epochs=3), tmp_path / "straight", show_progress=False)
    run_training(config(train__epochs=1), tmp_path / "split", show_progress=False)
    # An interrupted run: the checkpoint is there but not the final files.
    (tmp_path / "split" / "metrics.json").unlink()
    resumed = run_training(config(train__epochs=3), tmp_path / "split", resume=True,
                           show_progress=False)
    assert resumed["epochs_run"] == 3
    assert resumed["test"] == straight["test"]
    # CPU time is summed over the epochs of every part, as wall time is.
    per_epoch = [h["cpu_seconds"] for h in resumed["history"]]
    assert len(per_epoch) == 3 and min(per_epoch) > 0
    assert resumed["cpu_seconds"] == pytest.approx(sum(per_epoch), abs=0.01)


def test_cpu_time_left_out_when_a_resumed_checkpoint_never_recorded_it(tmp_path, config):
    run_training(config(train__epochs=1), tmp_path / "run", show_progress=False)
    (tmp_path / "run" / "metrics.json").unlink()
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    saved = load_torch(checkpoint)  # as a checkpoint written before the field existed
    del saved["state"]["cpu_seconds"], saved["state"]["history"][0]["cpu_seconds"]
    save_torch_atomic(checkpoint, saved)
    resumed = run_training(config(train__epochs=2), tmp_path / "run", resume=True,
                           show_progress=False)
    assert resumed["epochs_run"] == 2 and resumed["history"][1]["cpu_seconds"] > 0
    assert resumed["cpu_seconds"] is None  # a part of the run's CPU time is unknown


def test_existing_run_is_not_overwritten(tmp_path, config):
    run_training(config(train__epochs=1), tmp_path / "r", show_progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        run_training(config(train__epochs=1), tmp_path / "r", show_progress=False)
    again = run_training(config(train__epochs=1), tmp_path / "r", resume=True,
                         show_progress=False)
    assert again["epochs_run"] == 1


def test_evaluate_run_reproduces_test_metrics(tmp_path, config):
    metrics = run_training(config(train__epochs=1), tmp_path / "r", show_progress=False)
    again = evaluate_run(tmp_path / "r", device="cpu")
    for key, value in metrics["test"].items():
        assert again["test"][key] == pytest.approx(value, abs=1e-9)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["method"] == "sasrec"


@pytest.mark.parametrize("loss,instances", [("bce", "windows"), ("ce", "prefixes")])
def test_loss_and_instance_options_train(tmp_path, loss, instances, config):
    metrics = run_training(config(train__epochs=1, train__loss=loss,
                                  train__instances=instances), tmp_path / "r",
                           show_progress=False)
    assert 0.0 <= metrics["test"]["NDCG@10"] <= 1.0
    assert metrics["config"]["train"]["instances"] == instances


def test_resume_with_other_settings_names_them(tmp_path, config):
    from rclrec.config import ConfigError

    run_training(config(train__epochs=1), tmp_path / "r", show_progress=False)
    (tmp_path / "r" / "metrics.json").unlink()
    with pytest.raises(ConfigError, match="train.lr"):
        run_training(config(train__epochs=1, train__lr=0.01), tmp_path / "r", resume=True,
                     show_progress=False)
    # a setting added to rclrec after the run started takes its default, not an error
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    del saved["hpm"]
    (tmp_path / "r" / "config.json").write_text(json.dumps(saved))
    assert run_training(config(train__epochs=1), tmp_path / "r", resume=True,
                        show_progress=False)["epochs_run"] == 1


def test_resume_ignores_settings_of_other_methods(tmp_path, config):
    run_training(config(train__epochs=1), tmp_path / "r", show_progress=False)
    (tmp_path / "r" / "metrics.json").unlink()
    again = run_training(config(train__epochs=1, rcl__tau=2.0), tmp_path / "r", resume=True,
                         show_progress=False)
    assert again["epochs_run"] == 1


def test_git_commit_comes_from_the_environment_where_git_is_absent(monkeypatch):
    from rclrec.provenance import git_commit

    monkeypatch.setenv("RCLREC_GIT_COMMIT", "abc123")
    assert git_commit() == "abc123"
    monkeypatch.delenv("RCLREC_GIT_COMMIT")
    assert git_commit() != "abc123"


def test_train_threads_hold_after_the_similarity_index_is_built(tmp_path, monkeypatch, config):
    # RCL's setup builds the jaccard index with a numba kernel, which resets the OpenMP thread
    # count torch uses: the run must still train with train.threads (float sums depend on it).
    from rclrec.train.trainer import Trainer

    # The test's own empty $RCLREC_CACHE (conftest.py): the index is built, not read.
    seen = []
    original = Trainer.train_epoch

    def recording(self, epoch):
        seen.append(torch.get_num_threads())
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", recording)
    run_training(config(method="rcl", rcl__similarity="jaccard", train__epochs=1,
                        train__max_steps=1), tmp_path / "r", show_progress=False)
    assert seen == [1]
