"""The hardened ``http.server`` alternative to uvicorn, kept to repeat the comparison in
benchmarks/README.md ("serve_load.py"): the same Service limits, parsing and micro-batching,
behind a ThreadingHTTPServer with a bounded thread pool, a large listen backlog and a socket
timeout per connection.

    python benchmarks/serve_stdlib_server.py --run RUN --port 8080 [--workers 64]
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from rclrec.serve import Limits, MicroBatcher, Recommender, RequestError, parse_body
from rclrec.serve.request import check_content_length


def make_server(recommender: Recommender, port: int, workers: int, timeout_s: float,
                limits: Limits | None = None, default_k: int = 10) -> ThreadingHTTPServer:
    limits = limits or Limits()
    batcher = MicroBatcher(recommender, limits.histories)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn
        timeout = timeout_s  # socket timeout: a silent client frees its thread after this
        disable_nagle_algorithm = True  # head and body are two writes (see rclrec.serve.app)

        def send_json(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def send_error(self, code: int, message: str | None = None, explain=None) -> None:
            self.close_connection = True
            self.send_json(code, {"error": message or HTTPStatus(code).phrase})

        def do_GET(self) -> None:  # noqa: N802
            if self.path in ("/health", "/ready"):
                self.send_json(200, {"status": "ok"})
            else:
                self.send_json(404, {"error": f"no such path {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            try:
                length = check_content_length(self.headers.get("Content-Length"), limits) or 0
                query = parse_body(self.rfile.read(length), limits, default_k)
                recs = batcher.submit(query).result()
                self.send_json(200, {"recommendations": [vars(r) for r in recs]})
            except RequestError as e:
                self.close_connection = e.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
                self.send_json(e.status, {"error": str(e)})
            except MemoryError:
                self.send_json(503, {"error": "out of memory"})

        def log_message(self, format: str, *args) -> None:  # noqa: A002
            pass

    class PooledServer(ThreadingHTTPServer):
        request_queue_size = 2048
        daemon_threads = True

        def __init__(self) -> None:
            super().__init__(("127.0.0.1", port), Handler)
            self.pool = ThreadPoolExecutor(workers)

        def process_request(self, request, client_address) -> None:
            self.pool.submit(self.process_request_thread, request, client_address)

    return PooledServer()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True)
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--workers", type=int, default=64)
    p.add_argument("--timeout", type=float, default=10.0)
    args = p.parse_args()
    server = make_server(Recommender.from_run(args.run), args.port, args.workers, args.timeout)
    print(f"serving on http://127.0.0.1:{server.server_address[1]}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
