"""Export: ONNX (run with onnxruntime) and TorchScript score real histories as PyTorch does."""

import importlib.util
import json
import warnings

import numpy as np
import pytest
import torch

from rclrec import export
from rclrec.cli import main
from rclrec.config import load_config
from rclrec.data.batches import left_pad
from rclrec.data.split import leave_one_out
from rclrec.model_file import MODEL_FORMAT, load_model
from rclrec.models import build_encoder
from rclrec.run import load_data, resolve, run_training
from rclrec.serve import Recommender
from rclrec.train.checkpoint import load_torch, save_torch_atomic

FORMATS = [pytest.param("onnx", marks=[pytest.mark.slow, pytest.mark.skipif(
               not all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime")),
               reason="the export extra is not installed: pip install 'rclrec[export]'")]),
           "torchscript"]


@pytest.fixture(scope="module", params=["sasrec", "fmlp"])
def run_dir(request, tmp_path_factory, tiny_config):
    """A trained run whose items are named like a shop's (sku-<7 * id>), so that an export
    that confused raw ids with the model's ids would recommend the wrong items."""
    out = tmp_path_factory.mktemp(request.param)
    run_training(tiny_config({"method": "sasrec", "encoder.name": request.param}), out,
                 show_progress=False)
    saved = load_torch(out / "model.pt")
    saved["item_ids"] = [f"sku-{7 * i}" for i in range(1, saved["num_items"] + 1)]
    save_torch_atomic(out / "model.pt", saved)
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """export(run_dir, fmt) -> the model file, each exported once per module (ONNX takes
    seconds)."""
    files = {}

    def get(run_dir, fmt):
        if (run_dir, fmt) not in files:
            out = tmp_path_factory.mktemp("export") / f"model.{fmt}"
            result = export.export_run(run_dir, fmt, out)
            assert result["check"] is not None and result["check"] < 1e-5
            files[run_dir, fmt] = out
        return files[run_dir, fmt]

    return get


def real_histories(run_dir) -> np.ndarray:
    """The run's test histories, left-padded to max_len as the exported graph takes them."""
    _, cfg = load_model(run_dir)
    return left_pad(leave_one_out(load_data(cfg)).test_inputs(), cfg.encoder.max_len)


def run_file(path, fmt, history):
    """The serving path of docs/EXPORT.md, without rclrec."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path))
        return session.run(["scores", "state"], {"history": history})
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit, docs/EXPORT.md
        return [t.numpy() for t in torch.jit.load(str(path))(torch.from_numpy(history))]


@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_scores_equal_pytorch_on_real_histories(run_dir, fmt, exported):
    model_file = exported(run_dir, fmt)
    history = real_histories(run_dir)
    scores, state = run_file(model_file, fmt, history)

    encoder, _ = load_model(run_dir)
    with torch.no_grad():  # the full forward pass, as evaluation and serving score
        want_state = encoder(torch.from_numpy(history))[:, -1]
        want = (want_state @ encoder.item_table.T)[:, 1:].numpy()
    assert scores.shape == (len(history), 100) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(state, want_state.numpy(), rtol=1e-5, atol=1e-5)
    for batch in (history[:1], history[:3]):  # the batch size is free
        np.testing.assert_allclose(run_file(model_file, fmt, batch)[0],
                                   want[: len(batch)], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_description_maps_raw_ids_as_the_recommender_does(run_dir, fmt, exported):
    """Top-k from the exported file and the JSON beside it, by the steps of docs/EXPORT.md,
    equals `rclrec recommend` on raw item ids."""
    model_file = exported(run_dir, fmt)
    described = json.loads(export.description_path(model_file).read_text())
    assert [d["name"] for d in described["inputs"]] == ["history"]
    assert [d["name"] for d in described["outputs"]] == ["scores", "state"]
    item_ids, max_len = described["item_ids"], described["max_len"]
    raw = [["sku-21", "sku-49", "sku-49", "sku-140"], ["sku-7"], ["sku-700", "sku-14"]]

    index = {item: i + 1 for i, item in enumerate(item_ids)}  # raw id -> model id
    history = left_pad([np.array([index[i] for i in h]) for h in raw], max_len)
    scores = run_file(model_file, fmt, history)[0]
    got = []
    for row, h in zip(scores, raw, strict=True):
        row[[index[i] - 1 for i in h]] = -np.inf  # leave out the history, as the evaluation
        top = np.argsort(-row, kind="stable")[:5]
        got.append([item_ids[j] for j in top])
    want = Recommender.from_run(run_dir).recommend(raw, k=5)
    assert got == [r.items for r in want]


def test_matrix_filter_equals_the_fft_filter():
    """FMLP-Rec's filter as a (D, L, L) matrix: the same outputs as the FFT, for an odd and an
    even length (the rFFT's Nyquist bin exists only for even L)."""
    from rclrec.models.fmlp import FilterLayer

    torch.manual_seed(0)
    for length in (7, 50):
        layer = FilterLayer(length, 16, dropout=0.3).eval()
        with torch.no_grad():
            layer.complex_weight.normal_()  # far from the 0.02 init, so mixing is strong
            layer.norm.weight.uniform_(0.5, 1.5)
        x = torch.randn(4, length, 16)
        with torch.no_grad():
            want, got = layer(x), export.MatrixFilter(layer).eval()(x)
            mixed = torch.einsum("dij,bjd->bid", export.MatrixFilter(layer).matrix, x)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(mixed, layer.mix(x), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("run_dir", ["fmlp"], indirect=True)
def test_fmlp_onnx_graph_has_no_dft(run_dir, exported):
    onnx = pytest.importorskip("onnx", reason="the export extra is not installed")
    if importlib.util.find_spec("onnxscript") is None:
        pytest.skip("the export extra is not installed: pip install 'rclrec[export]'")
    graph = onnx.load(str(exported(run_dir, "onnx"))).graph
    assert "DFT" not in {node.op_type for node in graph.node}


@pytest.mark.slow
def test_beauty_shaped_model_exports_within_tolerance(tmp_path):
    """Beauty's sizes (12,101 items, max_len 50, hidden 64), untrained weights, full windows."""
    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("the export extra is not installed: pip install 'rclrec[export]'")
    cfg = resolve(load_config(None, {"data.max_len": 50}))
    encoder = build_encoder(cfg.encoder, 12101)
    save_torch_atomic(tmp_path / "model.pt", {
        "format": MODEL_FORMAT, "config": cfg.to_dict(),
        "num_items": 12101, "extra_tokens": 0, "item_ids": [f"B{i:09d}" for i in range(12101)],
        "state_dict": encoder.state_dict()})
    result = export.export_run(tmp_path, "onnx")
    assert result["check"] < 1e-5
    history = export.sample_histories(12101, 50, 256, seed=3)
    scores = run_file(tmp_path / "model.onnx", "onnx", history)[0]
    with torch.no_grad():
        want = export.ScoringModel(encoder.eval())(torch.from_numpy(history))[0].numpy()
    np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-5)


def test_cli_writes_model_and_description(run_dir, tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert main(["export", "--run", str(run_dir), "--format", "torchscript",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"written: {out}, {out}.json (100 items, max_len 50)" in printed
    assert "max |score difference| to PyTorch" in printed
    assert json.loads((tmp_path / "m.pt.json").read_text())["item_ids"][:2] == ["sku-7",
                                                                                 "sku-14"]


def test_cli_errors_are_one_line(run_dir, tmp_path, capsys, monkeypatch):
    assert main(["export", "--run", str(tmp_path / "nothing"), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rclrec export: error: ") and "model.pt does not exist" in err
    assert err.count("\n") == 1

    monkeypatch.setattr(export, "_importable", lambda module: module != "onnxscript")
    assert main(["export", "--run", str(run_dir), "--format", "onnx",
                 "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err == ("rclrec export: error: --format onnx needs the package(s) onnxscript: "
                   "pip install 'rclrec[export]'\n")
    assert not (tmp_path / "m.onnx").exists()
