"""The package installs without the Makefile: a wheel built from the source tree goes into an
empty virtual environment, and ``rclrec --help`` and ``python -m rclrec --help`` run from it.

The new environment sees the dependencies already installed for this interpreter (torch
included) through a .pth line, and the wheel is installed with --no-index: pip downloads no
dependency (in particular no CUDA torch) and fails if a declared one is not satisfied. Only the
isolated build fetches its backend (setuptools), as any `pip install .` does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*command, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # not the checkout
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=env)
    assert done.returncode == 0, f"{' '.join(map(str, command))}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_wheel_installs_into_an_empty_venv_and_runs(tmp_path):
    source = tmp_path / "source"  # a copy, so the build leaves no files in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "rclrec", source / "rclrec",
                    ignore=shutil.ignore_patterns("__pycache__"))

    venv = tmp_path / "venv"
    # No pip of its own: pip and setuptools come with the dependencies (see the .pth below),
    # as a venv's own bundled setuptools may be too old to build wheels.
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                    cwd=tmp_path).strip())
    site.mkdir(parents=True, exist_ok=True)
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    # The build runs isolated, as `pip install .` does: pip fetches the build backend
    # (setuptools) itself, so the test does not depend on the setuptools installed here.
    run(*pip, "wheel", "--no-deps", "-w", tmp_path / "dist", source, cwd=tmp_path)
    wheels = list((tmp_path / "dist").glob("rclrec-*.whl"))
    assert len(wheels) == 1
    # Every package of the source tree is in the wheel (a renamed or new folder such as
    # rclrec/grid must not be left out by the package list).
    packaged = set(zipfile.ZipFile(wheels[0]).namelist())
    packages = {init.parent.relative_to(ROOT).as_posix()
                for init in (ROOT / "rclrec").rglob("__init__.py")}
    assert {"rclrec/grid", "rclrec/data", "rclrec/train"} <= packages
    assert {f"{package}/__init__.py" for package in packages} <= packaged
    assert {"rclrec/run.py", "rclrec/grid/cells.py", "rclrec/cli.py"} <= packaged
    run(*pip, "install", "--no-index", wheels[0], cwd=tmp_path)

    where = run(python, "-c", "import rclrec; print(rclrec.__file__)", cwd=tmp_path)
    assert where.startswith(str(venv)), where  # the installed copy, not the checkout
    assert "train" in run(venv / "bin" / "rclrec", "--help", cwd=tmp_path)
    assert "evaluate" in run(python, "-m", "rclrec", "--help", cwd=tmp_path)
