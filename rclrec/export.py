"""Export a trained encoder as a scoring graph that runs without rclrec: ONNX or TorchScript.

The exported graph takes a batch of left-padded histories of the model's item ids and returns
the score of every item plus the history's state (docs/EXPORT.md)::

    history (B, max_len) int64  ->  scores (B, num_items) float32, state (B, hidden_dim) float32

Column j of ``scores`` is the item ``item_ids[j]``, whose id in ``history`` is j + 1 (0 is
padding). The item ids, the shapes and the names are written beside the model in
``<file>.json``, so a server maps its raw ids without rclrec.

ONNX goes through torch's dynamo exporter (``torch.onnx.export(dynamo=True)``, which needs
onnxscript): the TorchScript-based exporter it replaces has no ONNX form for FMLP-Rec's FFT
filter, and its SASRec graph uses an operator onnxruntime does not implement. In the ONNX file
FMLP-Rec's filter is its equal fixed-size linear map (:class:`MatrixFilter`): onnxruntime's DFT
operator, which the exporter would use for the FFT, scored several times slower than PyTorch.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rclrec.data.batches import left_pad
from rclrec.files import atomic_write, write_json_atomic
from rclrec.models.fmlp import FilterLayer

FORMATS = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
INPUT_NAME = "history"
OUTPUT_NAMES = ("scores", "state")
ONNX_OPSET = 18


class ExportError(ValueError):
    """The model cannot be exported as asked (a missing optional package, a failed check)."""


class ScoringModel(nn.Module):
    """The exported graph: an encoder's last state and its dot product with every item.

    Args:
        encoder: a trained encoder in eval mode (rclrec.models).
    """

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, max_len) int64 item ids, 0 = padding on the left -> scores (B, num_items) of
        items 1..num_items, state (B, D)."""
        state = self.encoder.last_state(history)  # (B, D)
        items = self.encoder.item_table[1:]  # (num_items, D): padding is never recommended
        return state @ items.T, state


class MatrixFilter(nn.Module):
    """FMLP-Rec's filter layer with its FFT mixing replaced by the equal (D, L, L) real matrix.

    The mixing irFFT(rFFT(x) * W) is linear along the sequence axis, one map per channel d:
    ``mixed[:, i, d] = sum_j M[d, i, j] x[:, j, d]`` for the fixed length L = max_len. M is read
    off the layer by mixing the L unit impulses; residual, dropout and LayerNorm are the layer's.
    """

    def __init__(self, layer: FilterLayer) -> None:
        super().__init__()
        length, dim = layer.max_len, layer.complex_weight.shape[2]
        with torch.no_grad():
            impulses = torch.eye(length).unsqueeze(-1).expand(length, length, dim)  # (j, i, D)
            response = layer.mix(impulses.to(layer.complex_weight.dtype))  # (j, i, D)
        self.register_buffer("matrix", response.permute(2, 1, 0).contiguous())  # (D, i, j)
        self.dropout = layer.dropout
        self.norm = layer.norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, L, D), as FilterLayer.forward."""
        mixed = torch.einsum("dij,bjd->bid", self.matrix, x)
        return self.norm(x + self.dropout(mixed))


def with_matrix_filters(encoder: nn.Module) -> nn.Module:
    """A copy of ``encoder`` whose FFT filter layers are :class:`MatrixFilter` (ONNX export)."""
    encoder = copy.deepcopy(encoder)
    for name, module in list(encoder.named_modules()):
        if isinstance(module, FilterLayer):
            parent, _, attr = name.rpartition(".")
            setattr(encoder.get_submodule(parent), attr, MatrixFilter(module))
    return encoder


def export_run(run_dir: str | Path, fmt: str, out: str | Path | None = None) -> dict[str, Any]:
    """Export ``run_dir/model.pt`` and write its description beside it.

    Args:
        run_dir: a finished run of ``rclrec train``.
        fmt: ``onnx`` or ``torchscript``.
        out: the model file [``run_dir/model.onnx`` or ``run_dir/model.torchscript.pt``].

    Returns:
        The description written to ``<out>.json`` (see :func:`describe`), plus ``"check"``: the
        largest score difference to PyTorch on random histories (None where onnxruntime is not
        installed to run the check).

    Raises:
        ExportError: unknown format, missing package, or exported scores that differ.
        FileNotFoundError: no model.pt in ``run_dir``.
    """
    from rclrec.serve import Recommender

    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    out = Path(out) if out is not None else Path(run_dir) / f"model{SUFFIX[fmt]}"
    recommender = Recommender.from_run(run_dir, "cpu")
    model = ScoringModel(recommender.encoder).eval()
    max_len = recommender.max_len
    example = torch.from_numpy(sample_histories(len(recommender.item_ids), max_len, 8, seed=0))
    if fmt == "onnx":
        write_onnx(ScoringModel(with_matrix_filters(recommender.encoder)).eval(), example, out)
    else:
        write_torchscript(model, example, out)
    description = describe(fmt, out, recommender.item_ids, max_len,
                           int(recommender.encoder.item_table.shape[1]),
                           name=recommender.encoder.cfg.name, run=str(run_dir))
    write_json_atomic(description_path(out), description)
    check = sample_histories(len(recommender.item_ids), max_len, 64, seed=1)
    difference = check_scores(model, out, fmt, check)
    return {**description, "check": difference}


def description_path(model_file: str | Path) -> Path:
    """Where the JSON description of an exported model lives: ``<model file>.json``."""
    model_file = Path(model_file)
    return model_file.with_name(model_file.name + ".json")


def describe(fmt: str, out: Path, item_ids: list[str], max_len: int, hidden_dim: int, *,
             name: str, run: str) -> dict[str, Any]:
    """What a server needs to call the exported model: names, shapes, dtypes and item ids."""
    return {
        "format": fmt,
        "model_file": out.name,
        "encoder": name,
        "run": run,
        "torch": torch.__version__,
        "opset": ONNX_OPSET if fmt == "onnx" else None,
        "inputs": [{"name": INPUT_NAME, "dtype": "int64", "shape": ["batch", max_len],
                    "meaning": "item ids (item_ids[i] is id i + 1), 0 = padding on the left, "
                               "most recent item last"}],
        "outputs": [{"name": "scores", "dtype": "float32", "shape": ["batch", len(item_ids)],
                     "meaning": "column j scores item_ids[j]; higher is better"},
                    {"name": "state", "dtype": "float32", "shape": ["batch", hidden_dim],
                     "meaning": "the history's representation: scores = state @ item vectors"}],
        "max_len": max_len,
        "padding_id": 0,
        "item_ids": list(item_ids),
    }


def write_onnx(model: ScoringModel, example: torch.Tensor, out: Path) -> None:
    """ONNX through the dynamo exporter, batch size free, weights inside the one file."""
    missing = [m for m in ("onnx", "onnxscript") if not _importable(m)]
    if missing:
        raise ExportError(f"--format onnx needs the package(s) {', '.join(missing)}: "
                          f"pip install 'rclrec[export]'")
    batch = torch.export.Dim("batch", min=1)

    # The exporter logs that torchvision's operators are absent: they are not used here.
    registry_log = logging.getLogger("torch.onnx._internal.exporter._registration")

    def write(tmp: str) -> None:
        level = registry_log.level
        registry_log.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                # The exporter's deprecation notices (pytree internals) are not the user's.
                warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
                torch.onnx.export(model, (example,), tmp, input_names=[INPUT_NAME],
                                  output_names=list(OUTPUT_NAMES), opset_version=ONNX_OPSET,
                                  dynamo=True, external_data=False, verbose=False,
                                  dynamic_shapes={"history": {0: batch}})
        finally:
            registry_log.setLevel(level)

    atomic_write(out, write)


def write_torchscript(model: ScoringModel, example: torch.Tensor, out: Path) -> None:
    """A traced TorchScript module (``torch.jit.load``, or libtorch's ``torch::jit::load``).

    Tracing fixes the history length at max_len (the encoders' length checks become
    constants); the batch size stays free.
    """
    with warnings.catch_warnings():
        # torch.jit is deprecated in favour of torch.export, yet TorchScript is still what
        # libtorch and TorchServe load; the trace warnings are about the fixed max_len.
        warnings.simplefilter("ignore", (DeprecationWarning, torch.jit.TracerWarning))
        traced = torch.jit.trace(model, (example,))
        atomic_write(out, lambda tmp: torch.jit.save(traced, tmp))


def sample_histories(num_items: int, max_len: int, count: int, seed: int) -> np.ndarray:
    """(count, max_len) left-padded histories of random items and lengths 1..max_len."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_len + 1, size=count)
    lengths[0] = max_len  # one full window, always
    return left_pad([rng.integers(1, num_items + 1, size=n) for n in lengths], max_len)


def run_exported(path: str | Path, fmt: str, history: np.ndarray) -> tuple[np.ndarray, ...]:
    """Scores and states of the exported model at ``path`` on (B, max_len) int64 histories:
    the serving path of docs/EXPORT.md (onnxruntime, or torch.jit.load)."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return tuple(session.run(list(OUTPUT_NAMES), {INPUT_NAME: history}))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit: see write_torchscript
        return tuple(t.numpy() for t in torch.jit.load(str(path))(torch.from_numpy(history)))


def check_scores(model: ScoringModel, path: Path, fmt: str, history: np.ndarray,
                 tolerance: float = 1e-5) -> float | None:
    """The largest absolute score difference between the exported file and ``model``.

    Returns None when the ONNX runtime is not installed (nothing to check with).

    Raises:
        ExportError: a difference exceeds ``tolerance * (1 + |score|)``.
    """
    if fmt == "onnx" and not _importable("onnxruntime"):
        return None
    with torch.no_grad():
        want = model(torch.from_numpy(history))[0].numpy()
    got = run_exported(path, fmt, history)[0]
    difference = float(np.abs(got - want).max())
    if not np.all(np.abs(got - want) <= tolerance * (1 + np.abs(want))):  # NaN fails too
        raise ExportError(f"{path}: exported scores differ from PyTorch's by {difference:.3g} "
                          f"(more than {tolerance:g}) on random histories")
    return difference


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def load_description(model_file: str | Path) -> dict[str, Any]:
    """The JSON description written beside an exported model."""
    return json.loads(description_path(model_file).read_text())
