"""Shared test setup: the tiny-run configuration, and a private index cache for every test."""

from types import MappingProxyType

import pytest

import rclrec.methods  # noqa: F401 - registers the methods' config sections ([rcl], [duorec], ...)
from rclrec.cli import TRAIN_SHORTCUTS
from rclrec.config import load_config

# The run most tests train: the synthetic Markov data (generated, no files), an encoder small
# enough to train in seconds, one thread (float sums depend on the thread count), and a few
# steps of one epoch. A test that needs another run passes the difference as overrides.
TINY_RUN = MappingProxyType({
    "data.dataset": "synthetic",
    "encoder.hidden_dim": "16",
    "encoder.inner_dim": "32",
    "train.threads": "1",
    "train.epochs": "1",
    "train.max_steps": "3",
})


@pytest.fixture
def tiny() -> dict[str, str]:
    """The tiny run as flat ``--set`` overrides (a fresh dict: a test may extend it)."""
    return dict(TINY_RUN)


@pytest.fixture(scope="session")
def tiny_config():
    """``tiny_config(overrides, **settings)``: the tiny run's config with other settings.

    ``settings`` spell the dot of a key as ``__`` (``train__epochs=2``); either form wins over
    the tiny run.
    """
    def build(overrides=None, /, **settings):
        dotted = {key.replace("__", "."): value for key, value in settings.items()}
        return load_config(overrides={**TINY_RUN, **(overrides or {}), **dotted})
    return build


@pytest.fixture(scope="session")
def tiny_flags() -> tuple[str, ...]:
    """The tiny run as ``rclrec train`` arguments, ending with ``--quiet``.

    A setting with a shortcut flag is given as that flag, not as ``--set``: ``--set`` wins over
    every flag, and a test's own later ``--epochs`` or ``--max-steps`` must win.
    """
    flag_of = {key: "--" + dest.replace("_", "-") for dest, key in TRAIN_SHORTCUTS.items()}
    args = []
    for key, value in TINY_RUN.items():
        args += [flag_of[key], value] if key in flag_of else ["--set", f"{key}={value}"]
    return (*args, "--quiet")


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
    """$RCLREC_CACHE for the fixtures shared by a module or the session: never ~/.cache/rclrec."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("session-cache")
        patch.setenv("RCLREC_CACHE", str(path))
        yield path


@pytest.fixture(autouse=True)
def rclrec_cache(tmp_path_factory, monkeypatch):
    """Each test's own empty $RCLREC_CACHE (similarity indexes, HPM clusters).

    Outside tmp_path, so that a test that lists its tmp_path finds only its own files; processes
    the test starts inherit it.
    """
    path = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("RCLREC_CACHE", str(path))
    return path
