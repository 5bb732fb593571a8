"""Data-parallel training under torchrun: two CPU processes (gloo) on the synthetic data."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.slow  # each test starts two processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
         "-m", "rclrec", "train", *args],
        capture_output=True, text=True, timeout=300, env=env)
    return proc


@pytest.fixture
def flags(tiny_flags) -> tuple[str, ...]:
    """The tiny run over whole epochs (no step cap), in batches of 64, with no early stop."""
    return (*tiny_flags, "--set", "train.max_steps=none", "--set", "train.batch_size=64",
            "--set", "train.patience=50")


def test_two_ranks_train_one_model_and_resume_exactly(tmp_path, flags):
    whole = torchrun(*flags, "--method", "sasrec", "--epochs", "3", "--out", str(tmp_path / "a"))
    assert whole.returncode == 0, whole.stderr[-2000:]
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["ranks"] == 2 and metrics["epochs_run"] == 3
    assert whole.stdout.count("best epoch") == 1  # rank 0 reports, once
    # 500 synthetic users in 64-row batches: 8 per epoch, 4 per rank.
    assert metrics["valid"]["NDCG@10"] > 0.05  # it learned (random ranking: about 0.03)
    again = torchrun(*flags, "--method", "sasrec", "--epochs", "3", "--resume",
                     "--out", str(tmp_path / "a"))  # finished: every rank returns at once
    assert again.returncode == 0 and "best epoch 3 of 3" in again.stdout, again.stderr[-2000:]

    part = torchrun(*flags, "--method", "sasrec", "--epochs", "2", "--out", str(tmp_path / "b"))
    assert part.returncode == 0, part.stderr[-2000:]
    (tmp_path / "b" / "metrics.json").unlink()  # interrupted: the checkpoint, not the results
    rest = torchrun(*flags, "--method", "sasrec", "--epochs", "3", "--resume",
                    "--out", str(tmp_path / "b"))
    assert rest.returncode == 0, rest.stderr[-2000:]
    resumed = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert resumed["valid"] == metrics["valid"] and resumed["test"] == metrics["test"]
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_rcl_trains_data_parallel_and_mclrec_is_refused(tmp_path, flags):
    rcl = torchrun(*flags, "--method", "rcl", "--similarity", "jaccard", "--epochs", "1",
                   "--out", str(tmp_path / "rcl"))
    assert rcl.returncode == 0, rcl.stderr[-2000:]
    assert json.loads((tmp_path / "rcl" / "metrics.json").read_text())["ranks"] == 2
    refused = torchrun(*flags, "--method", "mclrec", "--epochs", "1",
                       "--out", str(tmp_path / "mclrec"))
    assert refused.returncode != 0
    assert "cannot train data-parallel" in refused.stderr


def test_a_bad_run_folder_stops_every_rank_with_the_error(tmp_path, flags):
    """Rank 0 checks the run folder for all ranks: any input error there (here a metrics.json
    that is not JSON) reaches the other ranks, which exit with the same line instead of
    waiting for rank 0."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text("{")
    failed = torchrun(*flags, "--epochs", "1", "--resume", "--out", str(run))
    assert failed.returncode != 0
    # The two ranks' lines can interleave in the shared stderr; torchrun adds its own report.
    assert failed.stderr.count(f"rclrec train: error: {run / 'metrics.json'}: not valid "
                               f"JSON") == 2, failed.stderr[-3000:]
    assert "internal error" not in failed.stderr


def test_a_damaged_or_unreadable_best_pt_stops_every_rank_with_the_error(tmp_path, flags):
    """Only rank 0 reads best.pt at the end of training: its error reaches the other ranks,
    which exit with the same line instead of failing on rank 0's closed connection."""
    trained = torchrun(*flags, "--epochs", "2", "--out", str(tmp_path / "run"))
    assert trained.returncode == 0, trained.stderr[-2000:]
    (tmp_path / "run" / "metrics.json").unlink()  # interrupted after its last epoch
    best = tmp_path / "run" / "best.pt"
    best.write_bytes(best.read_bytes()[:100])  # truncated
    damaged = torchrun(*flags, "--epochs", "2", "--resume", "--out", str(tmp_path / "run"))
    best.unlink()
    best.mkdir()  # unreadable: a folder where the file should be
    unreadable = torchrun(*flags, "--epochs", "2", "--resume", "--out", str(tmp_path / "run"))
    for failed, words in ((damaged, "not a PyTorch file written by rclrec"),
                          (unreadable, "directory")):
        assert failed.returncode != 0
        # Split at the message, not into lines: the two ranks' lines may interleave.
        errors = [e.splitlines()[0] for e in failed.stderr.split("rclrec train: error: ")[1:]]
        assert len(errors) == 2 and all(e.startswith(f"{best}: ") and words in e
                                        for e in errors), failed.stderr[-3000:]
        assert "internal error" not in failed.stderr and "RuntimeError" not in failed.stderr
