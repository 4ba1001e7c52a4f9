"""`bridge serve`: the multi-tenant front door, an ASGI app (Starlette) on uvicorn, built on `Tenants`.

Routes:

* `POST /v1/run/{name}` with a JSON body `{"args": [str], "stdin": str, "env": {str: str}, "stream": bool}`
  (every field optional) runs the guest in a fresh instance on a worker thread. Without `stream` the
  reply is `{"exit_code", "stdout", "stderr", "error", "stats"}`; with it, `text/event-stream`: `stdout`
  events (`{"text": ...}`) as the guest writes, then one `exit` event carrying that JSON. A client that
  goes away stops its guest. 404 for an unknown guest, 400 for a bad body, 429 when `max_tenants` run and
  `max_queue` wait; every error body is `{"error": "..."}`.
* `GET /v1/guests`: the guests and their imports. `GET /healthz`: 200 once the models are loaded.
* `GET /metrics`: Prometheus text (runs by guest and outcome, active tenants, queue, tokens, time per host
  function, buffer-pool hits and misses).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import signal
import socket
import sys
import threading
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .tenants import Busy, Cancel, RunResult, Tenants

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
MAX_BODY_BYTES = 4 << 20  # a request body (arguments, environment, stdin) larger than this is refused
MAX_ARGS = 1024
# How often a waiting non-streaming request checks whether its client is still there.
DISCONNECT_POLL_SECONDS = 0.25


class BadRequest(Exception):
    """The request body is not what POST /v1/run/{name} takes."""


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    """The JSON body, read up to MAX_BODY_BYTES and checked field by field. Raises BadRequest."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise BadRequest(f"the body must be at most {MAX_BODY_BYTES} bytes of JSON")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BadRequest(f"the body must be at most {MAX_BODY_BYTES} bytes of JSON")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = sorted(set(body) - {"args", "stdin", "env", "stream"})
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}; the fields are args, stdin, env and stream")
    args = body.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args) or len(args) > MAX_ARGS:
        raise BadRequest(f"`args` must be a list of at most {MAX_ARGS} strings")
    if "stdin" in body and not isinstance(body["stdin"], str):
        raise BadRequest("`stdin` must be a string")
    env = body.get("env", {})
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise BadRequest("`env` must be an object of strings")
    if any(not k or "=" in k or "\0" in k + v for k, v in env.items()):
        raise BadRequest("`env` names must be non-empty, without '=', and no value may hold a NUL")
    if any("\0" in a for a in args):
        raise BadRequest("`args` may not hold a NUL")
    if not isinstance(body.get("stream", False), bool):
        raise BadRequest("`stream` must be true or false")
    return body


def create_app(tenants: Tenants, *, preload: Sequence[str] = ()) -> Starlette:
    """The ASGI app serving `tenants`. `preload` names models loaded before /healthz says ready."""
    executor = ThreadPoolExecutor(
        max_workers=tenants.max_tenants + tenants.max_queue, thread_name_prefix="bridge-tenant"
    )
    ready = threading.Event()

    async def run(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in tenants.guests:
            return _error(
                404, f"no guest named {name!r}; this host offers {', '.join(sorted(tenants.guests))}"
            )
        try:
            body = await _body(request)
        except BadRequest as exc:
            return _error(400, str(exc))
        except ClientDisconnect:
            return _error(400, "the client went away while sending the body")
        try:
            tenants.admit()
        except Busy as exc:
            return _error(429, str(exc))
        cancel = Cancel()
        loop = asyncio.get_running_loop()
        if body.get("stream"):
            return StreamingResponse(
                _stream(tenants, executor, name, body, cancel), media_type="text/event-stream"
            )
        job = loop.run_in_executor(executor, lambda: _run(tenants, name, body, cancel, None))
        try:
            while True:
                done, _ = await asyncio.wait({job}, timeout=DISCONNECT_POLL_SECONDS)
                if done:
                    break
                if await request.is_disconnected():
                    cancel.cancel()
        except asyncio.CancelledError:
            cancel.cancel()
            raise
        return JSONResponse(job.result().to_json())

    async def guests(request: Request) -> Response:
        return JSONResponse({"guests": tenants.describe()})

    async def healthz(request: Request) -> Response:
        if not ready.is_set():
            return _error(503, "loading models")
        return JSONResponse({"status": "ok", "active": tenants.active})

    async def metrics(request: Request) -> Response:
        return Response(tenants.metrics.text(), media_type="text/plain; version=0.0.4")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        for model in preload:
            await loop.run_in_executor(executor, tenants.models.get, model)
        ready.set()
        try:
            yield
        finally:
            tenants.interrupt_all()  # uvicorn waited for the requests it could; stop what is left
            executor.shutdown(wait=True, cancel_futures=True)

    return Starlette(
        routes=[
            Route("/v1/run/{name}", run, methods=["POST"]),
            Route("/v1/guests", guests, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def _run(tenants: Tenants, name: str, body: dict[str, Any], cancel: Cancel, on_stdout: Any) -> RunResult:
    return tenants.run(
        name,
        body.get("args", []),
        stdin=body.get("stdin"),
        env=body.get("env") or {},
        on_stdout=on_stdout,
        cancel=cancel,
        admitted=True,
    )


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


async def _stream(
    tenants: Tenants, executor: ThreadPoolExecutor, name: str, body: dict[str, Any], cancel: Cancel
) -> AsyncIterator[bytes]:
    """Server-sent events: `stdout` as the guest writes, then `exit`. Cancelled when the client leaves."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def forward(data: bytes) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, data)

    job = loop.run_in_executor(executor, lambda: _run(tenants, name, body, cancel, forward))
    try:
        while True:
            getter: asyncio.Future[bytes] = asyncio.ensure_future(queue.get())
            waiting: set[asyncio.Future[Any]] = {getter, job}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                text = decoder.decode(getter.result())
                if text:
                    yield _event("stdout", {"text": text})
                continue
            getter.cancel()
            while not queue.empty():
                text = decoder.decode(queue.get_nowait())
                if text:
                    yield _event("stdout", {"text": text})
            tail = decoder.decode(b"", final=True)
            if tail:
                yield _event("stdout", {"text": tail})
            yield _event("exit", job.result().to_json())
            return
    finally:
        if not job.done():
            cancel.cancel()  # the client went away: stop the guest, its resources go with it


def bind(address: str) -> socket.socket:
    """A listening socket for HOST:PORT (port 0 picks a free one). Raises ValueError for a bad address."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--bind {address}: expected HOST:PORT, e.g. 127.0.0.1:8000")
    host = host.strip("[]") or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as exc:
        sock.close()
        raise ValueError(f"--bind {address}: cannot listen there: {exc.strerror}") from None
    sock.listen(128)
    return sock


def serve(tenants: Tenants, sock: socket.socket, *, preload: Sequence[str] = (), grace: float | None) -> None:
    """Serves until SIGINT or SIGTERM, then stops accepting, lets running guests finish (at most
    `grace` seconds; None: as long as they take) and returns."""
    import uvicorn

    config = uvicorn.Config(
        create_app(tenants, preload=preload),
        log_level="warning",
        timeout_graceful_shutdown=None if grace is None else max(1, round(grace)),
        lifespan="on",
    )
    server = uvicorn.Server(config)
    host, port = sock.getsockname()[:2]
    print(
        f"bridge serve: listening on http://{host}:{port} (guests: {', '.join(sorted(tenants.guests))})",
        file=sys.stderr,
        flush=True,
    )
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again for whoever handled
    # it before; handlers that only note it make that a clean exit (0), as `serve` promises.
    stopped: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, frame: stopped.append(signum)) for sig in _STOP_SIGNALS
    }
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
