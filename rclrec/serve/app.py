"""The HTTP service: an ASGI application served by uvicorn (``pip install rclrec[serve]``).

Routes: ``POST /recommend`` (JSON, see :mod:`rclrec.serve.request`) answers
``{"recommendations": [{"items", "scores", "unknown"}, ...]}``; ``GET /health`` says the
process is alive; ``GET /ready`` answers 200 while the service takes requests and 503 once it
drains for shutdown. Every answer, errors included, is a JSON object; an error is
``{"error": "..."}`` with a 4xx or 5xx status.

uvicorn was chosen over a hardened ``http.server`` by measurement (benchmarks/README.md,
"serve_load.py"): an event loop keeps idle and slow connections without a thread each.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any

from rclrec.serve.batching import MicroBatcher
from rclrec.serve.recommender import Recommender
from rclrec.serve.request import Limits, RequestError, check_content_length, parse_body

ROUTES = "POST /recommend, GET /health, GET /ready"
OFF_LOOP_BYTES = 64 * 1024  # JSON larger than this is parsed / encoded off the event loop


class ClientGone(Exception):
    """The client closed its connection before sending its whole body."""


class Service:
    """The ASGI application: routing, request limits, admission and readiness.

    Args:
        recommender: the model.
        default_k: k of a request that names none.
        limits: the largest request accepted.
        max_in_flight: /recommend requests held at once (reading, queued or scored); more are
            answered 503 at once.
        max_in_flight_bytes: the bodies of the requests held at once (a body of unknown size
            counts as the largest allowed); a request that would pass it gets a 503. With the
            limits this bounds the memory that concurrent requests take.
        body_timeout_s: time allowed to send a body; a slower client gets a 408.
        max_batch_histories, max_wait_s: micro-batching, see :class:`MicroBatcher`.
    """

    def __init__(self, recommender: Recommender, default_k: int = 10, limits: Limits | None = None,
                 max_in_flight: int = 512, max_in_flight_bytes: int = 8 << 20,
                 body_timeout_s: float = 10.0,
                 max_batch_histories: int = 256, max_wait_s: float = 0.0) -> None:
        self.recommender = recommender
        self.default_k = default_k
        self.limits = limits or Limits()
        self.max_in_flight = max_in_flight
        self.max_in_flight_bytes = max_in_flight_bytes
        self.body_timeout_s = body_timeout_s
        self.batcher = MicroBatcher(recommender, max(max_batch_histories, self.limits.histories),
                                    max_wait_s)
        self.json_pool = ThreadPoolExecutor(2, thread_name_prefix="rclrec-json")
        self.draining = False
        self.in_flight = 0
        self.in_flight_bytes = 0

    @property
    def ready(self) -> bool:
        return not self.draining

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            try:
                status, body = await self._respond(scope, receive)
            except ClientGone:
                return
            await send_json(send, status, body)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # In-flight requests have been answered by now: uvicorn waits for them first.
                await asyncio.get_running_loop().run_in_executor(None, self.batcher.close)
                self.json_pool.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _respond(self, scope: dict, receive: Any) -> tuple[HTTPStatus, dict | bytes]:
        method, path = scope["method"], scope["path"]
        if path == "/health" and method == "GET":
            return HTTPStatus.OK, {"status": "ok"}
        if path == "/ready" and method == "GET":
            if not self.ready:
                return HTTPStatus.SERVICE_UNAVAILABLE, {"ready": False, "reason": "draining"}
            return HTTPStatus.OK, {"ready": True, "items": len(self.recommender.item_ids)}
        if path != "/recommend":
            return HTTPStatus.NOT_FOUND, {"error": f"no such path {path}; use {ROUTES}"}
        if method != "POST":
            return HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"use POST {path}"}
        try:
            declared = check_content_length(header(scope, b"content-length"), self.limits)
        except RequestError as e:
            return e.status, {"error": str(e)}
        size = self.limits.body_bytes if declared is None else declared
        if (self.in_flight >= self.max_in_flight
                or self.in_flight_bytes + size > self.max_in_flight_bytes):
            return HTTPStatus.SERVICE_UNAVAILABLE, {
                "error": f"busy: {self.in_flight} requests in flight; retry shortly"}
        self.in_flight += 1
        self.in_flight_bytes += size
        try:
            body = await self._read_body(receive)
            query = await self._off_loop_if(len(body) > OFF_LOOP_BYTES, parse_body, body,
                                            self.limits, self.default_k)
            recs = await asyncio.wrap_future(self.batcher.submit(query))
            answer = {"recommendations": [vars(r) for r in recs]}
            answer_bytes = sum(len(r.items) for r in recs) * 30  # ~30 per item and score
            return HTTPStatus.OK, await self._off_loop_if(answer_bytes > OFF_LOOP_BYTES,
                                                          json_bytes, answer)
        except RequestError as e:
            return e.status, {"error": str(e)}
        except MemoryError:
            return HTTPStatus.SERVICE_UNAVAILABLE, {"error": "out of memory; retry later or "
                                                             "send a smaller request"}
        except ClientGone:
            raise
        except Exception as e:  # a bug: still an answer the client can read
            return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(e).__name__}: {e}"}
        finally:
            self.in_flight -= 1
            self.in_flight_bytes -= size

    async def _off_loop_if(self, large: bool, fn: Any, *args: Any) -> Any:
        """``fn(*args)``, in the JSON pool if ``large``: a large body parsed or encoded on the
        event loop would stall every other connection, a small one costs less than the two
        thread switches."""
        if not large:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self.json_pool, fn, *args)

    async def _read_body(self, receive: Any) -> bytes:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout_s
        chunks, size = [], 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise RequestError(HTTPStatus.REQUEST_TIMEOUT, "the body did not arrive within "
                                   f"{self.body_timeout_s:g} s") from None
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limits.body_bytes:
                raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                   f"the body may hold at most {self.limits.body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def header(scope: dict, name: bytes) -> str | None:
    value = dict(scope["headers"]).get(name)
    return None if value is None else value.decode("latin-1")


def json_bytes(body: dict) -> bytes:
    return json.dumps(body).encode()


async def send_json(send: Any, status: HTTPStatus, body: dict | bytes) -> None:
    data = body if isinstance(body, bytes) else json_bytes(body)
    await send({"type": "http.response.start", "status": int(status),
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def import_uvicorn() -> Any:
    try:
        import uvicorn
    except ImportError:
        raise ImportError("rclrec serve needs uvicorn: pip install 'rclrec[serve]'") from None
    return uvicorn


# A Content-Length header in a request's head (h11 keeps none of the head it could not parse).
DECLARED_LENGTH = re.compile(rb"^content-length:[ \t]*([0-9]+)[ \t]*\r?$", re.I | re.M)
HEAD_BYTES = 64 * 1024  # of a request head kept to find it (h11 refuses longer heads anyway)


def protocol_class(header_timeout_s: float, limits: Limits | None = None) -> type:
    """uvicorn's h11 protocol with a deadline for each request's headers, and JSON answers to
    malformed HTTP. uvicorn times out an idle connection only after a first response and
    restarts the wait on every byte, so a client that connects and sends nothing, or sends its
    headers a byte at a time, would keep its connection for ever.

    h11 refuses a Content-Length of more than 20 digits as malformed HTTP before the service
    sees it: such a request gets the 413 of any too large body (``check_content_length``
    under ``limits``), not a 400."""
    limits = limits or Limits()
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _head = b""  # the bytes of the request head now arriving

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            # An answer's head and body are two writes: with Nagle's algorithm the body waits
            # for the client's delayed ACK on a keep-alive connection. asyncio turns it off
            # only on sockets made with proto=IPPROTO_TCP, which socket.create_server's are not.
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self.cycle is None or self.cycle.response_complete:  # a head is arriving
                self._head = (self._head + data)[-HEAD_BYTES:]
            super().data_received(data)
            if self.cycle is not None and not self.cycle.response_complete:
                self._disarm()  # the headers are in

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._head = b""
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            waiting = self.cycle is None or self.cycle.response_complete
            if waiting and not self.transport.is_closing():
                self.transport.close()

        def send_400_response(self, msg: str) -> None:
            status = HTTPStatus.BAD_REQUEST
            declared = DECLARED_LENGTH.search(self._head)
            try:
                check_content_length(declared and declared.group(1).decode(), limits)
            except RequestError as e:
                status, msg = e.status, str(e)
            data = json.dumps({"error": msg}).encode()
            headers = [(b"content-type", b"application/json"), (b"connection", b"close"),
                       (b"content-length", str(len(data)).encode())]
            for event in (h11.Response(status_code=int(status), headers=headers),
                          h11.Data(data=data), h11.EndOfMessage()):
                self.transport.write(self.conn.send(event))
            self.transport.close()

    return Protocol


class HttpServer:
    """``service`` on a listening socket; :meth:`run` serves until SIGTERM / SIGINT (in the
    main thread) or :meth:`stop`, then answers the requests in flight and returns.

    Args:
        backlog: connections the kernel queues before they are accepted.
        header_timeout_s: an open connection must send a request's headers within this time
            (and an idle keep-alive connection is closed after it).
        shutdown_timeout_s: the longest wait for requests in flight at shutdown.
    """

    def __init__(self, service: Service, host: str = "127.0.0.1", port: int = 8080,
                 backlog: int = 2048, header_timeout_s: float = 10.0,
                 shutdown_timeout_s: float = 30.0) -> None:
        uvicorn = import_uvicorn()
        self.service = service
        self.socket = socket.create_server((host, port), reuse_port=False)
        self.host, self.port = self.socket.getsockname()[:2]
        config = uvicorn.Config(service, http=protocol_class(header_timeout_s, service.limits),
                                lifespan="on",
                                backlog=backlog, timeout_keep_alive=int(header_timeout_s),
                                timeout_graceful_shutdown=int(shutdown_timeout_s),
                                log_level="warning", access_log=False)

        class Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame: Any) -> None:
                service.draining = True  # /ready answers 503 from the first signal
                super().handle_exit(sig, frame)

        self._server = Server(config)
        self.started = threading.Event()

    def run(self) -> None:
        async def main() -> None:
            task = asyncio.create_task(self._server.serve(sockets=[self.socket]))
            while not self._server.started and not task.done():
                await asyncio.sleep(0.01)
            self.started.set()
            await task

        try:
            asyncio.run(main())
        finally:
            self.started.set()
            self.socket.close()

    def stop(self) -> None:
        """Begin a graceful shutdown, as SIGTERM does."""
        self.service.draining = True
        self._server.should_exit = True
