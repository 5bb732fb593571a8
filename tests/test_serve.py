"""Recommendations from a trained run: library, `rclrec recommend` and `rclrec serve`."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from rclrec import cli
from rclrec.cli import main
from rclrec.model_file import load_model
from rclrec.run import run_training
from rclrec.serve import Limits, MicroBatcher, Query, Recommender
from rclrec.serve.app import HttpServer, Service
from rclrec.train.checkpoint import load_torch, save_torch_atomic

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_config):
    out = tmp_path_factory.mktemp("run")
    run_training(tiny_config({"method": "sasrec", "train.max_steps": 2}), out,
                 show_progress=False)
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


def test_recommend_command_reads_in_chunks_and_numbers_every_line(run_dir, tmp_path, capsys,
                                                                 monkeypatch):
    monkeypatch.setattr(cli, "RECOMMEND_CHUNK_LINES", 7)
    lines = [" ".join(str(1 + (i + j) % 30) for j in range(1 + i % 5)) for i in range(40)]
    (tmp_path / "h.txt").write_text("\n".join(lines) + "\n")
    assert main(["recommend", "--run", str(run_dir), "--input", str(tmp_path / "h.txt"),
                 "--k", "3"]) == 0
    got = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    want = Recommender.from_run(run_dir).recommend([line.split() for line in lines], k=3)
    assert [r["line"] for r in got] == list(range(1, 41))
    assert [r["items"] for r in got] == [w.items for w in want]


def peak_rss_mb(code: str) -> float:
    """Peak RSS of a fresh Python process running ``code``."""
    script = code + ("\nimport resource\n"
                     "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
                     "file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", "import sys\n" + script], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         check=True).stderr
    return int(out.split("PEAK")[-1]) / 1024


@pytest.mark.slow
def test_one_long_history_does_not_multiply_the_memory_of_its_batch(run_dir):
    # 255 short histories and one of 200,000 items: a (histories, longest) int64 matrix for
    # the exclusion would take 400 MB.
    load = (f"from rclrec.serve import Recommender\n"
            f"rec = Recommender.from_run({str(run_dir)!r})\nrec.recommend([['1']], k=5)\n")
    baseline = peak_rss_mb(load)
    grown = peak_rss_mb(load + "long = [str(1 + i % 50) for i in range(200_000)]\n"
                               "rec.recommend([long] + [['2']] * 255, k=5)\n")
    assert grown - baseline < 100


@pytest.mark.slow
def test_recommend_command_memory_stays_bounded_on_a_long_input(run_dir, tmp_path):
    lines = ["1 2 3"] * 2999 + [" ".join(str(1 + i % 50) for i in range(50_000))]
    (tmp_path / "h.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "one.txt").write_text("1 2 3\n")
    code = ("import sys\nfrom rclrec.cli import main\n"
            "sys.stdout = open('/dev/null', 'w')\n"
            "main(['recommend', '--run', {run!r}, '--input', {path!r}])\n")
    baseline = peak_rss_mb(code.format(run=str(run_dir), path=str(tmp_path / "one.txt")))
    grown = peak_rss_mb(code.format(run=str(run_dir), path=str(tmp_path / "h.txt")))
    assert grown - baseline < 150


@pytest.mark.slow
def test_recommend_into_a_closed_pipe_ends_quietly(run_dir, tmp_path):
    (tmp_path / "h.txt").write_text("1 2 3\n" * 3000)
    proc = subprocess.Popen([sys.executable, "-m", "rclrec", "recommend", "--run", str(run_dir),
                             "--input", str(tmp_path / "h.txt")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert json.loads(proc.stdout.readline())["line"] == 1
    proc.stdout.close()  # as `| head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_micro_batches_give_the_answers_of_one_at_a_time(run_dir):
    rec = Recommender.from_run(run_dir)
    queries = [Query([[str(1 + (i * 7 + j) % 40) for j in range(1 + i % 9)]], k=1 + i % 6,
                     exclude_history=i % 3 != 0) for i in range(30)]
    queries.append(Query([["1", "2"], ["zz"], ["3"] * 60], k=4))
    batcher = MicroBatcher(rec, max_histories=64, max_wait_s=0.2)
    try:
        futures = [batcher.submit(q) for q in queries]
        answers = [f.result(timeout=60) for f in futures]
    finally:
        batcher.close()
    assert max(batcher.batch_sizes) > 1  # shared forward passes
    for q, got in zip(queries, answers, strict=True):
        alone = rec.recommend(q.histories, q.k, q.exclude_history)
        assert [r.items for r in got] == [r.items for r in alone]
        assert [r.unknown for r in got] == [r.unknown for r in alone]
        for g, a in zip(got, alone, strict=True):
            assert g.scores == pytest.approx(a.scores, rel=1e-4, abs=1e-5)


@contextmanager
def serving(service, **server_options):
    """``service`` on a free port in a thread; yields the port."""
    server = HttpServer(service, port=0, **server_options)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert server.started.wait(30)
    try:
        yield server.port
    finally:
        server.stop()
        thread.join(30)
        assert not thread.is_alive()


@pytest.fixture
def service_url(run_dir):
    """A running service with small limits; yields (port, service)."""
    limits = Limits(body_bytes=2000, histories=4, items_per_history=20, k=50)
    service = Service(Recommender.from_run(run_dir), default_k=3, limits=limits,
                      body_timeout_s=0.5)
    with serving(service, header_timeout_s=0.5) as port:
        yield port, service


def request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        conn.request(method, path, data, headers or {})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def raw(port, data: bytes, then_wait=0.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(data)
        time.sleep(then_wait)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def json_of(response: bytes) -> tuple[int, dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_http_service_answers_recommendations_health_and_readiness(service_url):
    port, service = service_url
    status, body = request(port, "POST", "/recommend", {"history": ["1", "2", "x"]})
    assert status == 200
    (got,) = body["recommendations"]
    assert got["items"] == service.recommender.recommend([["1", "2"]], k=3)[0].items
    assert got["unknown"] == ["x"]
    status, body = request(port, "POST", "/recommend", {"histories": [["1"], ["2"]], "k": 2})
    assert status == 200 and [len(r["items"]) for r in body["recommendations"]] == [2, 2]
    assert request(port, "GET", "/health") == (200, {"status": "ok"})
    assert request(port, "GET", "/ready") == (200, {"ready": True,
                                                    "items": len(service.recommender.item_ids)})
    service.draining = True
    assert request(port, "GET", "/ready")[0] == 503
    service.draining = False


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"k": 3}, 400, "exactly one"),
    ({"history": "1 2"}, 400, "list of item ids"),
    ({"history": ["1"], "k": 0}, 400, '"k" must be'),
    ({"history": ["1"], "k": 51}, 400, "from 1 to 50"),
    ({"histories": [["1"]] * 5}, 400, "at most 4 histories"),
    ({"history": ["1"] * 21}, 400, "at most 20 items"),
    ({"history": [["1"]]}, 400, "strings or integers"),
    (b"{not json", 400, "not JSON"),
    (b"[" * 1000 + b"]" * 1000, 400, "nested too deeply"),
    ({"history": ["1"] * 20, "pad": "x" * 2000}, 413, "at most 2000 bytes"),
])
def test_bad_requests_get_a_json_error_naming_the_problem(service_url, body, status, words):
    port, _ = service_url
    got_status, got = request(port, "POST", "/recommend", body)
    assert got_status == status and words in got["error"], got


def test_every_error_is_a_json_response(service_url, monkeypatch):
    port, service = service_url
    assert request(port, "GET", "/nope")[0] == 404
    assert request(port, "GET", "/recommend")[0] == 405
    # A huge declared body is refused before a byte of it is read.
    status, body = json_of(raw(port, b"POST /recommend HTTP/1.1\r\nHost: x\r\n"
                                     b"Content-Length: 10000000\r\n\r\n"))
    assert status == 413 and "at most" in body["error"]
    status, body = json_of(raw(port, b"POST /recommend HTTP/1.1\r\nHost: x\r\n"
                                     b"Content-Length: " + b"1" + b"0" * 30 + b"\r\n\r\n"))
    assert status == 413 and "at most" in body["error"]  # h11 refuses it as malformed HTTP
    status, body = json_of(raw(port, b"NONSENSE\r\n\r\n"))
    assert status == 400 and body["error"]

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(service.recommender, "recommend", out_of_memory)
    status, body = request(port, "POST", "/recommend", {"history": ["1"]})
    assert status == 503 and "out of memory" in body["error"]


def test_slow_and_silent_connections_are_timed_out(service_url):
    port, _ = service_url
    # Headers, then half the body, then silence: a 408 after body_timeout_s.
    status, body = json_of(raw(port, b"POST /recommend HTTP/1.1\r\nHost: x\r\n"
                                     b"Content-Length: 100\r\n\r\n{\"hist"))
    assert status == 408 and "did not arrive" in body["error"]
    # Connected but silent, or half a header: closed after header_timeout_s.
    for data in (b"", b"POST /recommend HTTP/1.1\r\n"):
        start = time.monotonic()
        assert raw(port, data) == b""
        assert time.monotonic() - start < 10


def test_two_hundred_simultaneous_clients_all_get_answers(service_url):
    port, _ = service_url
    barrier = threading.Barrier(200)

    def client(i):
        barrier.wait()
        return request(port, "POST", "/recommend", {"history": [str(1 + i % 40)]})[0]

    with ThreadPoolExecutor(200) as pool:
        statuses = list(pool.map(client, range(200)))
    assert statuses == [200] * 200


@pytest.mark.slow
def test_sigterm_answers_the_requests_in_flight_and_refuses_new_ones(run_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "rclrec", "serve", "--run", str(run_dir),
                             "--port", str(port)], stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        for _ in range(300):
            try:
                assert request(port, "GET", "/ready")[0] == 200
                break
            except OSError:
                time.sleep(0.1)
        body = json.dumps({"history": ["1", "2"]}).encode()
        conn = socket.create_connection(("127.0.0.1", port), timeout=30)
        conn.sendall(b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body[:5])
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        conn.sendall(body[5:])
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
        conn.close()
        status, answer = json_of(b"".join(chunks))
        assert status == 200 and len(answer["recommendations"][0]["items"]) == 10
        assert proc.wait(30) == 0
        assert "stopped" in proc.stderr.read().decode()
    finally:
        proc.kill()
        proc.wait()


def test_requests_beyond_the_in_flight_budget_are_told_to_retry(run_dir):
    service = Service(Recommender.from_run(run_dir), limits=Limits(body_bytes=2000),
                      max_in_flight_bytes=2500)
    with serving(service) as port:
        slow = socket.create_connection(("127.0.0.1", port), timeout=30)
        slow.sendall(b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Length: 1500\r\n\r\n")
        time.sleep(0.3)  # its 1500 bytes are now held
        status, body = request(port, "POST", "/recommend", {"history": ["1"], "pad": "x" * 1100})
        assert status == 503 and "busy" in body["error"]
        assert request(port, "POST", "/recommend", {"history": ["1"]})[0] == 200
        slow.close()
        time.sleep(0.3)
        status, _ = request(port, "POST", "/recommend", {"history": ["1"], "pad": "x" * 1100})
        assert status == 200


def test_recommend_command_says_when_the_history_holds_every_item(run_dir, tmp_path, capsys):
    items = Recommender.from_run(run_dir).item_ids
    (tmp_path / "h.txt").write_text(" ".join(items) + "\n")
    assert main(["recommend", "--run", str(run_dir), "--input", str(tmp_path / "h.txt")]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["items"] == []
    assert "h.txt line 1: every item the model knows is in the history" in captured.err


@pytest.mark.parametrize("exclude_history", [True, False])
def test_a_large_catalogue_is_scored_in_blocks_with_the_same_top_k(monkeypatch, exclude_history):
    from rclrec.config import EncoderConfig
    from rclrec.eval import ranking
    from rclrec.models import build_encoder

    torch.manual_seed(0)
    encoder = build_encoder(EncoderConfig(max_len=8, hidden_dim=16, inner_dim=32), 50)
    rec = Recommender(encoder, [str(i) for i in range(1, 51)], 8)
    histories = [["1", "17", "33", "50"], ["9"], ["2", "40", "41", "3", "18"]]
    whole = rec.recommend(histories, k=12, exclude_history=exclude_history)
    monkeypatch.setattr(ranking, "SCORE_ELEMENTS", 3 * 7)  # 12-item blocks (at least k)
    blocked = rec.recommend(histories, k=12, exclude_history=exclude_history)
    assert [r.items for r in blocked] == [r.items for r in whole]
    for b, w in zip(blocked, whole, strict=True):  # a narrower product may round the last bit
        assert b.scores == pytest.approx(w.scores, rel=1e-6)
    if exclude_history:
        assert not set(whole[0].items) & set(histories[0])
