"""Recommendations from a trained run: library, `rclrec recommend` and `rclrec serve`."""

import json
import threading
import urllib.error
import urllib.request

import pytest
import torch

from rclrec.cli import main
from rclrec.config import load_config
from rclrec.experiment import load_model, run_training
from rclrec.serve import Recommender, make_server
from rclrec.train.checkpoint import load_torch, save_torch_atomic

TINY = {"data.dataset": "synthetic", "method": "sasrec", "encoder.hidden_dim": 16,
        "encoder.inner_dim": 32, "train.epochs": 1, "train.max_steps": 2, "train.threads": 1}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    run_training(load_config(None, TINY), out, show_progress=False)
    return out


def named(run_dir):
    """The run's encoder with items renamed i1..iN, so ids and internal rows differ in text."""
    encoder, cfg = load_model(run_dir)
    n = encoder.item_table.shape[0] - 1
    return Recommender(encoder, [f"i{i}" for i in range(1, n + 1)], cfg.encoder.max_len)


def test_top_k_matches_the_encoder_and_leaves_out_the_history(run_dir):
    rec = named(run_dir)
    history = ["i3", "i7", "i7", "i20"]
    (got,) = rec.recommend([history], k=5)
    with torch.no_grad():
        state = rec.encoder(torch.tensor([[3, 7, 7, 20]]))[0, -1]
        scores = state @ rec.encoder.item_table[1:].T
    scores[[2, 6, 19]] = -torch.inf
    want = torch.topk(scores, 5)
    assert got.items == [f"i{int(i) + 1}" for i in want.indices]
    assert got.scores == pytest.approx(want.values.tolist(), rel=1e-5)
    assert got.unknown == []
    (kept,) = rec.recommend([history], k=rec.encoder.item_table.shape[0], exclude_history=False)
    assert set(history) <= set(kept.items) and len(kept.items) == len(rec.item_ids)


def test_unknown_items_are_reported_and_a_history_without_known_items_gets_nothing(run_dir):
    rec = named(run_dir)
    mixed, unknown_only, empty = rec.recommend([["i5", "zz", "i9"], ["zz", "yy"], []], k=3)
    assert mixed.unknown == ["zz"] and len(mixed.items) == 3
    assert mixed.items == rec.recommend([["i5", "i9"]], k=3)[0].items  # as if never given
    assert unknown_only.items == [] and unknown_only.unknown == ["zz", "yy"]
    assert empty.items == [] and empty.unknown == []
    with pytest.raises(ValueError, match="k must be >= 1"):
        rec.recommend([["i5"]], k=0)


def test_runs_saved_without_item_ids_read_them_from_their_dataset(run_dir, tmp_path):
    saved = load_torch(run_dir / "model.pt")
    assert saved["item_ids"][:3] == ["1", "2", "3"]
    (tmp_path / "old").mkdir()
    save_torch_atomic(tmp_path / "old" / "model.pt",
                      {k: v for k, v in saved.items() if k != "item_ids"})
    old = Recommender.from_run(tmp_path / "old")
    assert old.item_ids == Recommender.from_run(run_dir).item_ids


def test_recommend_command_writes_json_lines_and_names_useless_lines(run_dir, tmp_path, capsys):
    histories = tmp_path / "histories.txt"
    histories.write_text("1 2 3\nnope\n4\n")
    assert main(["recommend", "--run", str(run_dir), "--input", str(histories), "--k", "4"]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["line"] for r in lines] == [1, 2, 3]
    assert len(lines[0]["items"]) == 4 and not {"1", "2", "3"} & set(lines[0]["items"])
    assert lines[1] == {"line": 2, "items": [], "scores": [], "unknown": ["nope"]}
    assert "histories.txt line 2: no item the model knows" in captured.err
    assert main(["recommend", "--run", str(run_dir), "--input", str(tmp_path / "none")]) == 2
    assert "none" in capsys.readouterr().err


def test_http_service_answers_recommendations_and_explains_bad_requests(run_dir):
    rec = Recommender.from_run(run_dir)
    server = make_server(rec, port=0, default_k=3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"

    def post(body):
        req = urllib.request.Request(f"{url}/recommend", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    try:
        status, body = post({"history": ["1", "2", "x"]})
        assert status == 200
        (got,) = body["recommendations"]
        assert got["items"] == rec.recommend([["1", "2"]], k=3)[0].items
        assert got["unknown"] == ["x"]
        status, body = post({"histories": [["1"], ["2"]], "k": 2})
        assert status == 200 and [len(r["items"]) for r in body["recommendations"]] == [2, 2]
        for bad, words in (({"k": 3}, "exactly one"), ({"history": "1 2"}, "list of item ids"),
                           ({"history": ["1"], "k": 0}, '"k" must be')):
            status, body = post(bad)
            assert status == 400 and words in body["error"], bad
        with urllib.request.urlopen(f"{url}/health", timeout=30) as resp:
            assert json.loads(resp.read()) == {"status": "ok", "items": len(rec.item_ids)}
    finally:
        server.shutdown()
        server.server_close()
