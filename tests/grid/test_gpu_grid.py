"""benchmarks/gpu_grid.sh, the paper profile, run end to end on the CPU with a tiny override."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_grid_fills_the_paper_controls_and_returns_unfinished_checkpoints(tmp_path):
    work = tmp_path / "work"
    unfinished = work / "0123456789abcdef"  # a cell an earlier deadline cut
    unfinished.mkdir(parents=True)
    (unfinished / "checkpoint.pt").write_bytes(b"x" * 1000)
    (unfinished / "config.json").write_text("{}")
    env = {**os.environ, "DEVICE": "cpu", "SMOKE": "0", "TIMING_STEPS": "0", "WORKERS": "1",
           "THREADS": "1", "PYTHON": sys.executable, "RESULTS": str(tmp_path / "r" / "paper"),
           "OUT": str(tmp_path / "out"), "WORK": str(work),
           "RCLREC_CACHE": str(tmp_path / "cache"),
           "GRID_ARGS": "--epochs 1 --max-steps 1 --budget 1 --seeds 1",
           "SUITES": "controls:synthetic"}
    run = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_grid.sh"), "590"], env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    out = tmp_path / "out"
    with tarfile.open(out / "paper.tgz") as tar:
        names = tar.getnames()
        manifests = {Path(n).stem: json.load(tar.extractfile(n)) for n in names
                     if "/suites/" in n and n.endswith(".json")}
    assert set(manifests) == {"control_base", "control_lambda0", "control_random", "control_repeat",
                              "control_paper_rcl"}
    for manifest in manifests.values():
        assert manifest["profile"] == "paper"
        for entry in manifest["entries"]:
            assert entry["cells"] and not entry["missing"], entry["id"]
    assert sum(n.endswith("cell.json") for n in names) >= 7
    with tarfile.open(out / "resume-0.tgz") as tar:
        assert "0123456789abcdef/checkpoint.pt" in tar.getnames()
    assert (out / "resume-done.txt").read_text() == "resume-0.tgz 0123456789abcdef\n"
    with tarfile.open(out / "logs.tgz") as tar:
        assert "./worker1.log" in tar.getnames()


def _merge(repo, files_at):
    """``gpu_grid.sh --merge files_at`` run in a copy of the script's layout at ``repo``."""
    (repo / "benchmarks").mkdir(parents=True, exist_ok=True)
    (repo / "benchmarks" / "gpu_grid.sh").write_bytes(
        (REPO / "benchmarks" / "gpu_grid.sh").read_bytes())
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(REPO)}
    return subprocess.run(["bash", str(repo / "benchmarks" / "gpu_grid.sh"), "--merge",
                           str(files_at)], env=env, capture_output=True, text=True, timeout=300,
                          cwd=repo)


def _checkpoint_archive(path, cell, payload):
    import tempfile

    src = Path(tempfile.mkdtemp())
    (src / cell).mkdir()
    (src / cell / "checkpoint.pt").write_text(payload)
    (src / cell / "config.json").write_text("{}")
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src / cell, arcname=cell)


def test_merge_keeps_the_old_checkpoints_when_no_marker_came_back(tmp_path):
    repo = tmp_path / "repo"
    resume = repo / ".gpu" / "resume"
    resume.mkdir(parents=True)
    for cell in ("aaaa", "bbbb"):
        _checkpoint_archive(resume / f"{cell}.tgz", cell, "old")
    # A call cut at the device limit (or ended by a failed smoke run): no marker; a partial
    # resume archive that came back must not replace the older one.
    files = tmp_path / "files"
    files.mkdir()
    _checkpoint_archive(files / "resume-0.tgz", "aaaa", "partial")
    run = _merge(repo, files)
    assert run.returncode == 0, run.stderr
    assert "no resume-done.txt came back" in run.stdout
    assert sorted(p.name for p in resume.iterdir()) == ["aaaa.tgz", "bbbb.tgz"]
    with tarfile.open(resume / "aaaa.tgz") as tar:
        assert tar.extractfile("aaaa/checkpoint.pt").read() == b"old"
    # With the marker, only the cells that came back replace theirs; a finished cell drops its own.
    (files / "resume-done.txt").write_text("resume-0.tgz aaaa\n")
    finished = repo / "results" / "paper" / "cells" / "bbbb"
    finished.mkdir(parents=True)
    (finished / "cell.json").write_text("{}")
    _checkpoint_archive(resume / "cccc.tgz", "cccc", "old")
    run = _merge(repo, files)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in resume.iterdir()) == ["aaaa.tgz", "cccc.tgz"]
    with tarfile.open(resume / "aaaa.tgz") as tar:
        assert tar.extractfile("aaaa/checkpoint.pt").read() == b"partial"
    with tarfile.open(resume / "cccc.tgz") as tar:
        assert tar.extractfile("cccc/checkpoint.pt").read() == b"old"
