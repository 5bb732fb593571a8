"""Load on `rclrec serve` (uvicorn) or the hardened stdlib server: bursts, a soak, the
largest requests the limits allow, and idle connections.

    python benchmarks/serve_load.py --run /tmp/serve-beauty --server uvicorn
    python benchmarks/serve_load.py --run /tmp/serve-beauty --server stdlib
    python benchmarks/serve_load.py --run /tmp/serve-beauty --code ../main --label before

Starts the server as a child process on a free port and measures from outside it:
- burst: 200 clients, each opening a new connection per request, start together, 5 rounds;
- soak: 20,000 requests over 4 keep-alive clients, mixing valid single histories, batches of
  16, histories with unknown items and malformed requests (bad JSON, k = 0, no history, deep
  nesting, too many histories);
- worst: the largest requests within the limits (1 MiB bodies of long histories, 256
  histories with k = 1000, one 10,000-item history among short ones, deep nesting), one at a
  time and 8 at once; the peak RSS (VmHWM) growth over the RSS before;
- idle: 600 connections that send nothing, or half a header, while 4 clients send 200
  requests; then how many of the 600 the server closed.
Transport errors are exceptions on the client side (refused, reset, timed out): goal 0.
Writes benchmarks/results/serve_load_<server>.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from rclrec.config import config_from_dict
from rclrec.data.split import leave_one_out
from rclrec.provenance import git_commit
from rclrec.run import load_data

ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(kind: str, run: str, port: int, code: Path,
                 options: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(code)}
    if kind == "uvicorn":
        cmd = [sys.executable, "-m", "rclrec", "serve", "--run", run, "--port", str(port),
               *options]
    else:
        cmd = [sys.executable, str(ROOT / "benchmarks" / "serve_stdlib_server.py"),
               "--run", run, "--port", str(port)]
    # cwd too: `python -m` looks in the working directory before PYTHONPATH.
    proc = subprocess.Popen(cmd, env=env, cwd=code, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(600):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.1)
        finally:
            conn.close()
    proc.kill()
    raise RuntimeError("the server did not start")


class Stats:
    """Latencies, statuses and transport errors, shared by client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.errors: dict[str, int] = {}

    def add(self, seconds: float, status: int | None, error: str | None = None) -> None:
        with self.lock:
            self.latencies.append(seconds)
            if status is not None:
                self.statuses[status] = self.statuses.get(status, 0) + 1
            if error:
                self.errors[error] = self.errors.get(error, 0) + 1

    def summary(self, wall: float) -> dict:
        lat = np.array(self.latencies) * 1000
        return {"requests": len(lat), "transport_errors": sum(self.errors.values()),
                "errors": self.errors, "statuses": {str(k): v for k, v in
                                                    sorted(self.statuses.items())},
                "p50_ms": round(float(np.percentile(lat, 50)), 2),
                "p99_ms": round(float(np.percentile(lat, 99)), 2),
                "requests_per_s": round(len(lat) / wall, 1), "wall_s": round(wall, 2)}


def post(conn: http.client.HTTPConnection, body: bytes, stats: Stats) -> None:
    start = time.perf_counter()
    try:
        conn.request("POST", "/recommend", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        json.loads(data)  # every answer, errors included, must be JSON
        stats.add(time.perf_counter() - start, resp.status)
    except Exception as e:  # noqa: BLE001 (counted, not hidden)
        conn.close()
        stats.add(time.perf_counter() - start, None, type(e).__name__)


def run_clients(client, clients: int, stats: Stats) -> dict:
    """``client(0) ... client(clients - 1)`` in threads at once; the summary of ``stats``."""
    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return stats.summary(time.perf_counter() - start)


def burst(port: int, histories: list[list[str]], clients: int, rounds: int) -> dict:
    stats, barrier = Stats(), threading.Barrier(clients)

    def client(c: int) -> None:
        for r in range(rounds):
            barrier.wait()
            body = json.dumps({"history": histories[(c * rounds + r) % len(histories)]})
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            post(conn, body.encode(), stats)
            conn.close()

    return run_clients(client, clients, stats)


def soak_bodies(histories: list[list[str]], n: int, rng: np.random.Generator) -> list[bytes]:
    malformed = [b"{not json", b'{"history": ["1"], "k": 0}', b'{"k": 5}',
                 b"[" * 5000 + b"]" * 5000, json.dumps({"histories": [["1"]] * 300}).encode()]
    out = []
    for i in range(n):
        u = rng.random()
        if u < 0.7:
            body = {"history": histories[rng.integers(len(histories))]}
        elif u < 0.8:
            body = {"histories": [histories[j] for j in rng.integers(len(histories), size=16)]}
        elif u < 0.9:
            h = histories[rng.integers(len(histories))]
            body = {"history": h[:2] + [f"unknown-{i}-{j}" for j in range(5)] + h[2:]}
        else:
            out.append(malformed[i % len(malformed)])
            continue
        out.append(json.dumps(body).encode())
    return out


def soak(port: int, bodies: list[bytes], clients: int) -> dict:
    stats = Stats()

    def client(c: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for body in bodies[c::clients]:
            post(conn, body, stats)
        conn.close()

    return run_clients(client, clients, stats)


def worst_bodies(item_ids: list[str], limit_bytes: int = 1 << 20) -> dict[str, bytes]:
    """The largest requests the default limits accept (and two they refuse after parsing)."""
    rng = np.random.default_rng(1)
    unknown = [f"u{i}" for i in range(100_000)]

    def fill(n_hist: int, k: int, ids: list[str]) -> bytes:
        per = 10_000  # items per history, shrunk until the body fits
        while True:
            hs = [[ids[i] for i in rng.integers(len(ids), size=per)] for _ in range(n_hist)]
            body = json.dumps({"histories": hs, "k": k}).encode()
            if len(body) <= limit_bytes:
                return body
            per = int(per * limit_bytes / len(body) * 0.98)

    long_one = [[item_ids[i] for i in rng.integers(len(item_ids), size=10_000)]]
    return {
        "1 history of 10,000 items, k=1000": fill(1, 1000, item_ids),
        "256 histories filling 1 MiB, k=128": fill(256, 128, item_ids),
        "one 10,000-item history + 255 short, k=128": json.dumps(
            {"histories": long_one + [[item_ids[5]]] * 255, "k": 128}).encode(),
        "256 histories of unknown ids filling 1 MiB": fill(256, 10, unknown),
        "1 MiB deep nesting (400)": b"[" * (limit_bytes // 2) + b"]" * (limit_bytes // 2),
        "256 histories, k=1000 (400: answer too large)": json.dumps(
            {"histories": [[item_ids[1]]] * 256, "k": 1000}).encode(),
    }


def worst(port: int, pid: int, item_ids: list[str]) -> dict:
    bodies = worst_bodies(item_ids)
    before = rss_mb(pid)
    out: dict = {"rss_before_mb": round(before, 1), "cases": {}}
    for name, body in bodies.items():
        stats = Stats()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        post(conn, body, stats)
        conn.close()
        out["cases"][name] = {"bytes": len(body), "statuses": stats.statuses,
                              "errors": stats.errors,
                              "ms": round(stats.latencies[0] * 1000, 1),
                              "peak_rss_growth_mb": round(rss_mb(pid, "VmHWM") - before, 1)}
    stats = Stats()
    threads = [threading.Thread(target=lambda b=body: post(
        http.client.HTTPConnection("127.0.0.1", port, timeout=120), b, stats))
        for body in list(bodies.values())[:3] * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["9 at once"] = {"statuses": stats.statuses, "errors": stats.errors}
    out["peak_rss_growth_mb"] = round(rss_mb(pid, "VmHWM") - before, 1)
    out["rss_after_mb"] = round(rss_mb(pid), 1)
    return out


def idle(port: int, histories: list[list[str]], sockets: int, wait_s: float) -> dict:
    held = []
    for i in range(sockets):
        s = socket.create_connection(("127.0.0.1", port))
        if i % 2:
            s.sendall(b"POST /recommend HTTP/1.1\r\nHost: x\r\n")  # half a header, then silence
        held.append(s)
    time.sleep(0.5)
    result = soak(port, [json.dumps({"history": histories[i % len(histories)]}).encode()
                         for i in range(200)], 4)
    time.sleep(wait_s)
    closed = 0
    for s in held:
        s.settimeout(0.01)
        try:
            closed += s.recv(1) == b""
        except (TimeoutError, BlockingIOError):
            pass
        except OSError:
            closed += 1
        s.close()
    result[f"idle_closed_by_server_after_{wait_s:g}s"] = closed
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True)
    p.add_argument("--server", choices=["uvicorn", "stdlib"], default="uvicorn")
    p.add_argument("--code", default=str(ROOT),
                   help="checkout whose `rclrec serve` runs (another commit, to compare)")
    p.add_argument("--serve-options", default="", help='more `rclrec serve` flags, e.g. '
                                                       '"--batch-wait-ms 0"')
    p.add_argument("--label", help="results file suffix [the server]")
    p.add_argument("--phases", nargs="+", default=["burst", "soak", "worst", "idle"])
    p.add_argument("--soak-requests", type=int, default=20_000)
    p.add_argument("--soak-clients", type=int, default=4)
    p.add_argument("--idle-sockets", type=int, default=600)
    p.add_argument("--idle-wait", type=float, default=12.0,
                   help="seconds before counting idle sockets the server closed")
    args = p.parse_args()
    cfg = config_from_dict(json.loads((Path(args.run) / "config.json").read_text()))
    dataset = load_data(cfg)
    item_ids = dataset.item_ids or [str(i) for i in range(1, dataset.num_items + 1)]
    histories = [[item_ids[i - 1] for i in seq[-cfg.encoder.max_len:]]
                 for seq in leave_one_out(dataset).test_inputs()]
    port = free_port()
    proc = start_server(args.server, args.run, port, Path(args.code).resolve(),
                        args.serve_options.split())
    code_commit = subprocess.run(["git", "-C", args.code, "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip()
    out: dict = {"server": args.server, "serve_options": args.serve_options,
                 "code": f"{args.code} at {code_commit}",
                 "run": args.run, "dataset": cfg.data.dataset,
                 "items": len(item_ids), "commit": git_commit(),
                 "machine": f"{platform.processor() or platform.machine()}, "
                            f"{os.cpu_count()} CPUs, shared with other jobs",
                 "rss_start_mb": round(rss_mb(proc.pid), 1)}
    try:
        for phase in args.phases:
            print(f"{phase} ...", file=sys.stderr, flush=True)
            if phase == "burst":
                out["burst"] = burst(port, histories, 200, 5)
            elif phase == "soak":
                bodies = soak_bodies(histories, args.soak_requests, np.random.default_rng(0))
                soak(port, bodies[:200], args.soak_clients)  # warm-up
                before = rss_mb(proc.pid)
                out["soak"] = soak(port, bodies, args.soak_clients)
                out["soak"].update(clients=args.soak_clients, rss_before_mb=round(before, 1),
                                   rss_after_mb=round(rss_mb(proc.pid), 1))
            elif phase == "worst":
                out["worst"] = worst(port, proc.pid, item_ids)
            elif phase == "idle":
                out["idle"] = idle(port, histories, args.idle_sockets, args.idle_wait)
            print(json.dumps(out.get(phase), indent=1), file=sys.stderr, flush=True)
    finally:
        proc.terminate()
        try:
            out["exit_code_after_sigterm"] = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out["exit_code_after_sigterm"] = "killed after 60 s"
    path = ROOT / "benchmarks" / "results" / f"serve_load_{args.label or args.server}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written: {path}")


if __name__ == "__main__":
    main()
