"""A trained run's model.pt: written by the run recipe, read back (and checked) by evaluation,
serving, export and the analysis.

model.pt holds the config, the number of items and input-only tokens, the item ids as in the
data file, and the encoder's state dict. A model file may come from anyone: it is checked
against its own config before anything is built from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

import rclrec.methods  # noqa: F401  (registers the config sections of the saved configs read here)
from rclrec.config import ConfigError, ExperimentConfig, config_from_dict
from rclrec.data.dataset import DataError, SequenceDataset
from rclrec.data.registry import load_training_data
from rclrec.files import CorruptFile
from rclrec.models import build_encoder
from rclrec.train.checkpoint import load_torch, save_torch_atomic, state_dict_problem

MODEL_FORMAT = 1


def write_model_file(run_dir: Path, cfg: ExperimentConfig, encoder: nn.Module,
                     extra_tokens: int, item_ids: list[str] | None) -> None:
    """Write ``run_dir/model.pt`` atomically (what :func:`read_model_file` reads back)."""
    save_torch_atomic(run_dir / "model.pt", {
        "format": MODEL_FORMAT,
        "config": cfg.to_dict(),
        "num_items": encoder.num_items,
        "extra_tokens": extra_tokens,
        "item_ids": item_ids,  # serving names items as the data file does
        "state_dict": encoder.state_dict(),
    })


def load_model(run_dir: str | Path, device: str | torch.device = "cpu"):
    """Rebuild a trained encoder and its config from ``run_dir/model.pt``."""
    return model_from_saved(read_model_file(run_dir), device)


def read_model_file(run_dir: str | Path) -> dict[str, Any]:
    """``run_dir/model.pt``, checked against its own config before anything is built from it.

    Raises:
        FileNotFoundError: no model.pt (not a finished run).
        CorruptFile: damaged, forged or not written by rclrec (the message names the file).
    """
    path = Path(run_dir) / "model.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist (is {run_dir} a finished run?)")
    saved = load_torch(path)
    check_model_file(saved, path)
    return saved


def check_model_file(saved: Any, path: Path) -> None:
    """The contents of a model.pt are what ``run_training`` writes: a valid config, and tensors
    of exactly the sizes that config and ``num_items`` give. The sizes are worked out on the
    meta device, so a file that declares a huge item table allocates nothing."""
    def bad(reason: str) -> CorruptFile:
        return CorruptFile(f"{path}: not a model file written by rclrec ({reason})")

    if not isinstance(saved, dict):
        raise bad(f"holds a {type(saved).__name__}, not a dict")
    for key, kind in (("config", dict), ("num_items", int), ("state_dict", dict)):
        if not isinstance(saved.get(key), kind) or isinstance(saved.get(key), bool):
            raise bad(f"{key!r} is missing or not a {kind.__name__}")
    if saved.get("format", MODEL_FORMAT) != MODEL_FORMAT:
        raise bad(f"format {saved.get('format')!r}; this rclrec reads format {MODEL_FORMAT}")
    num_items, extra = saved["num_items"], saved.get("extra_tokens", 0)
    if num_items < 1 or not isinstance(extra, int) or extra < 0:
        raise bad(f"num_items {num_items}, extra_tokens {extra!r}")
    item_ids = saved.get("item_ids")
    if item_ids is not None and (not isinstance(item_ids, list) or len(item_ids) != num_items
                                 or not all(isinstance(i, str) for i in item_ids)):
        raise bad(f"item_ids is not a list of {num_items} strings")
    try:
        cfg = config_from_dict(saved["config"])
        with torch.device("meta"), _SizesOnly():
            expected = build_encoder(cfg.encoder, num_items, extra).state_dict()
    except (ConfigError, ValueError) as e:
        raise bad(f"its config: {e}") from None
    problem = state_dict_problem(saved["state_dict"], expected)
    if problem is not None:
        raise bad(f"{problem} for a {cfg.encoder.name} encoder of {num_items} items")


class _SizesOnly(TorchFunctionMode):
    """Build a model on the meta device for its sizes alone: random initialisation, and
    arithmetic of a tensor with a number, leave sizes as they are and are skipped (on the meta
    device they go through torch's decompositions, which import torch._dynamo: seconds of
    start-up and tens of MB). An op missed here costs that time, never a wrong size."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__module__", None) == "torch.nn.init" or func in _RANDOM_FILLS:
            return args[0] if args else kwargs["tensor"]
        if func in (torch.randn, torch.rand):
            return torch.empty(*args, **kwargs)
        if (getattr(func, "__name__", "").strip("_") in _WITH_A_NUMBER and len(args) == 2
                and isinstance(args[0], torch.Tensor) and isinstance(args[1], (int, float))):
            return args[0]
        return func(*args, **kwargs)


_RANDOM_FILLS = {torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.bernoulli_,
                 torch.Tensor.random_}
_WITH_A_NUMBER = {"mul", "rmul", "div", "truediv", "add", "radd", "sub", "rsub"}


def model_from_saved(saved: dict[str, Any], device: str | torch.device = "cpu"):
    """The encoder (eval mode, on ``device``) and config of a loaded model.pt."""
    cfg = config_from_dict(saved["config"])
    encoder = build_encoder(cfg.encoder, saved["num_items"], saved.get("extra_tokens", 0))
    encoder.load_state_dict(saved["state_dict"])
    return encoder.to(device).eval(), cfg


def load_model_and_data(run_dir: str | Path, device: str | torch.device = "cpu"):
    """The encoder, config and dataset of a finished run (evaluation, analysis)."""
    saved = read_model_file(run_dir)
    encoder, cfg = model_from_saved(saved, device)
    return encoder, cfg, data_of_model(cfg, Path(run_dir) / "model.pt", saved["num_items"])


def data_of_model(cfg: ExperimentConfig, path: Path, num_items: int) -> SequenceDataset:
    """The dataset a model file's config names, which must have the items it was trained on.

    A model file may come from anyone: when its dataset cannot be read the error names the
    dataset but repeats nothing the reader saw in it (a forged config could name any file).
    """
    try:
        dataset = load_training_data(cfg.data)
    except (OSError, ValueError):
        raise DataError(f"{path}: the dataset its config names ({cfg.data.dataset!r}) cannot be "
                        f"read; `rclrec stats --dataset {cfg.data.dataset}` says why") from None
    if dataset.num_items != num_items:
        raise DataError(f"{path} was trained on {num_items} items, but its dataset "
                        f"{cfg.data.dataset!r} now has {dataset.num_items}: the data changed "
                        f"since training")
    return dataset
