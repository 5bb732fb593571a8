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
    assert set(manifests) == {"control_lambda0", "control_random", "control_repeat",
                              "control_paper_rcl"}
    for manifest in manifests.values():
        assert manifest["profile"] == "paper"
        for entry in manifest["entries"]:
            assert entry["cells"] and not entry["missing"], entry["id"]
    assert sum(n.endswith("cell.json") for n in names) >= 7
    with tarfile.open(out / "resume-0.tgz") as tar:
        assert "0123456789abcdef/checkpoint.pt" in tar.getnames()
    with tarfile.open(out / "logs.tgz") as tar:
        assert "./worker1.log" in tar.getnames()
