"""Many guests at once: shared models, per-request sandboxes and limits, metrics.

`Tenants` is the machinery behind `bridge serve`, usable without HTTP:

    tenants = Tenants({"paris": load_module("paris.wasm")}, limits=Limits(timeout=60))
    result = tenants.run("paris", ["What is the capital of Italy?"])   # in any thread
    print(result.exit_code, result.stdout)

Each run is a fresh `Guest`: its own store, memories, handles and limits, on the caller's thread. All runs
share the loaded models (one `ModelStore`) and the native kernels. At most `max_tenants` guests run at
once; up to `max_queue` more wait for a slot, and past that `admit` refuses (HTTP 429). A run's output is
captured up to `max_output` bytes per stream (the rest is dropped and noted), so a guest that prints for
ever costs the host a bounded buffer.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import HistogramMetricFamily

from .errors import BridgeError, GuestExit, GuestInterrupted, GuestTimeout, GuestTrap, HostError
from .guest import Guest, GuestModule
from .host import HostFunctions
from .limits import Limits
from .realm.abi import ModelStore, RealmState, realm_functions
from .trace import Tracer

# Exit codes for runs that did not exit by themselves, as `bridge run` gives them.
EXIT_TRAP, EXIT_TIMEOUT, EXIT_CANCELLED = 1, 124, 130
DEFAULT_MAX_OUTPUT = 16 << 20


@dataclass
class RunResult:
    """How one run ended: exit code, captured output, the error in plain words (None if it exited), stats."""

    exit_code: int
    stdout: str
    stderr: str
    error: str | None
    stats: dict[str, Any] = field(default_factory=dict)
    # For benchmarks (not in the JSON): seconds per decoded token, and the decode phase's
    # (start, end) on time.perf_counter's clock.
    token_seconds: list[float] = field(default_factory=list)
    decode_window: tuple[float, float] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "error": self.error,
            "stats": self.stats,
        }


class Busy(BridgeError):
    """Too many runs are running or waiting (`max_tenants` + `max_queue`)."""


class UnknownGuest(BridgeError):
    """No guest of that name is offered."""


class Cancel:
    """Stops a run from another thread (a client that went away): its guest is interrupted at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._guest: Guest | None = None
        self.cancelled = False

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            if self._guest is not None:
                self._guest.interrupt()

    def _attach(self, guest: Guest | None) -> bool:
        """Records the running guest; False when the run was cancelled before it started."""
        with self._lock:
            self._guest = guest
            return not self.cancelled


class _Capture:
    """A bounded buffer for one output stream, optionally passing each write on as it comes."""

    def __init__(self, limit: int, forward: Callable[[bytes], None] | None) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.dropped = 0
        self.forward = forward

    def write(self, data: bytes) -> None:
        room = self.limit - self.size
        kept = data[: max(room, 0)]
        if kept:
            self.parts.append(kept)
            self.size += len(kept)
            if self.forward is not None:
                self.forward(kept)
        self.dropped += len(data) - len(kept)

    def text(self) -> str:
        text = b"".join(self.parts).decode("utf-8", "replace")
        if self.dropped:
            text += f"\n[bridge: {self.dropped} more bytes of output were dropped]\n"
        return text


class _BatchSizes:
    """A Prometheus collector: how many tenants' calls each kernel call served, per model (histogram)."""

    BUCKETS = (1, 2, 4, 8, 16, 32, 64)

    def __init__(self, models: ModelStore) -> None:
        self.models = models

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            "bridge_batch_size",
            "Tenant calls served by one kernel call (cross-tenant batching)",
            labels=["model"],
        )
        for model in self.models.loaded():
            sizes = model.batcher.batch_sizes
            buckets = [
                (str(b), float(sum(n for size, n in sizes.items() if size <= b))) for b in self.BUCKETS
            ]
            buckets.append(("+Inf", float(sum(sizes.values()))))
            total = float(sum(size * n for size, n in sizes.items()))
            family.add_metric([model.name], buckets, total)
        yield family


class TenantMetrics:
    """Prometheus metrics of one Tenants object (its own registry, so several can live in a process)."""

    def __init__(self, models: ModelStore) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        r.register(_BatchSizes(models))
        self.requests = Counter(
            "bridge_requests", "Runs by guest and outcome", ["guest", "outcome"], registry=r
        )
        self.active = Gauge("bridge_active_tenants", "Guests running now", registry=r)
        self.queued = Gauge("bridge_queued_requests", "Runs waiting for a tenant slot", registry=r)
        self.tokens = Counter(
            "bridge_tokens_generated", "Tokens decoded by realm guests", ["guest"], registry=r
        )
        self.prompt_tokens = Counter(
            "bridge_prompt_tokens", "Prompt tokens prefilled by realm guests", ["guest"], registry=r
        )
        self.host_seconds = Counter(
            "bridge_host_function_seconds", "Time spent in realm host functions", ["function"], registry=r
        )
        self.host_calls = Counter("bridge_host_function_calls", "Realm host calls", ["function"], registry=r)
        self.pool_hits = Counter("bridge_buffer_pool_hits", "Scratch buffer pool hits", registry=r)
        self.pool_misses = Counter("bridge_buffer_pool_misses", "Scratch buffer pool misses", registry=r)
        self.run_seconds = Counter("bridge_run_seconds", "Wall time of runs", ["guest"], registry=r)

    def text(self) -> bytes:
        return generate_latest(self.registry)


class Tenants:
    """Runs many guests concurrently on shared models; see the module docstring.

    `guests` maps names to compiled modules; `hosts` are extra registries every guest may import;
    `limits` apply to each run. Raises ValueError for bounds out of range.
    """

    def __init__(
        self,
        guests: Mapping[str, GuestModule],
        *,
        hosts: Sequence[HostFunctions] = (),
        models: ModelStore | None = None,
        limits: Limits | None = None,
        max_tenants: int = 16,
        max_queue: int = 64,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> None:
        if max_tenants < 1 or max_queue < 0 or max_output < 0:
            raise ValueError("max_tenants must be at least 1, max_queue and max_output at least 0")
        self.guests = dict(guests)
        self.hosts = list(hosts)
        self.models = models or ModelStore(progress=False)
        self.realm = realm_functions(self.models)
        self.limits = limits or Limits()
        self.max_tenants = max_tenants
        self.max_queue = max_queue
        self.max_output = max_output
        self.metrics = TenantMetrics(self.models)
        self.tracer: Tracer | None = None  # set to trace every run's host calls (serve --trace)
        self._slots = threading.Semaphore(max_tenants)
        self._lock = threading.Lock()
        self._admitted = 0  # running or waiting for a slot
        self._running: set[Guest] = set()

    # --- what is offered -----------------------------------------------------------------------------

    def describe(self) -> list[dict[str, Any]]:
        """Each guest's name, origin and imports (with their wasm signatures)."""
        return [
            {
                "name": name,
                "module": module.origin,
                "imports": [imp.describe() for imp in module.imports],
                "memory64": module.is64,
            }
            for name, module in sorted(self.guests.items())
        ]

    @property
    def active(self) -> int:
        return len(self._running)

    # --- running -------------------------------------------------------------------------------------

    def admit(self) -> None:
        """Counts one more run in; raises Busy when max_tenants + max_queue are already in."""
        with self._lock:
            if self._admitted >= self.max_tenants + self.max_queue:
                raise Busy(
                    f"{self._admitted} runs are running or queued, the most this host takes "
                    f"({self.max_tenants} at once, {self.max_queue} waiting)"
                )
            self._admitted += 1

    def _leave(self) -> None:
        with self._lock:
            self._admitted -= 1

    def run(
        self,
        name: str,
        args: Sequence[str] = (),
        *,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        on_stdout: Callable[[bytes], None] | None = None,
        cancel: Cancel | None = None,
        admitted: bool = False,
    ) -> RunResult:
        """Runs guest `name` in a fresh instance, on this thread, and returns how it ended.

        Waits for a tenant slot first. `on_stdout` is called with each write as the guest makes it.
        Raises UnknownGuest for a name not offered, Busy when the host is full (unless `admitted`:
        the caller already counted this run in with `admit`). Guest failures are in the result.
        """
        module = self.guests.get(name)
        if module is None:
            raise UnknownGuest(f"no guest named {name!r}; this host offers {', '.join(sorted(self.guests))}")
        if not admitted:
            self.admit()
        self.metrics.queued.inc()
        try:
            self._slots.acquire()
        finally:
            self.metrics.queued.dec()
        try:
            return self._run(name, module, args, stdin, env or {}, on_stdout, cancel or Cancel())
        finally:
            self._slots.release()
            self._leave()

    def _run(
        self,
        name: str,
        module: GuestModule,
        args: Sequence[str],
        stdin: str | None,
        env: Mapping[str, str],
        on_stdout: Callable[[bytes], None] | None,
        cancel: Cancel,
    ) -> RunResult:
        out = _Capture(self.max_output, on_stdout)
        err = _Capture(self.max_output, None)
        started = time.perf_counter()
        code, error, outcome = 0, None, "exit"
        state: RealmState | None = None
        stdin_file = None
        guest: Guest | None = None
        self.metrics.active.inc()
        try:
            if stdin is not None:
                stdin_file = _stdin_file(stdin)
            if self.tracer is not None:
                self.tracer.name_thread(f"tenant {name} #{threading.get_ident() % 10000}")
            guest = Guest(
                module,
                hosts=[self.realm, *self.hosts],
                argv=[name, *args],
                env=env,
                stdout=out.write,
                stderr=err.write,
                stdin=stdin_file or "null",
                limits=self.limits,
                trace=self.tracer,
            )
            found = guest.context(self.realm).state
            state = found if isinstance(found, RealmState) else None
            with self._lock:
                self._running.add(guest)
            if not cancel._attach(guest):
                raise GuestInterrupted("the run was cancelled before it started")
            code = guest.run()
            outcome = "exit" if code == 0 else "nonzero"
        except GuestExit as exit_:
            code = exit_.code
        except GuestTimeout as exc:
            code, error, outcome = EXIT_TIMEOUT, exc.message, "timeout"
        except GuestInterrupted:
            code, error, outcome = EXIT_CANCELLED, "the run was cancelled", "cancelled"
        except HostError as exc:
            original = exc.original
            message = str(original) if isinstance(original, BridgeError) else exc.message
            code, error, outcome = EXIT_TRAP, message, "trap"
        except GuestTrap as exc:
            code, error, outcome = EXIT_TRAP, exc.message, "trap"
        except BridgeError as exc:
            code, error, outcome = EXIT_TRAP, str(exc), "error"
        finally:
            cancel._attach(None)
            if guest is not None:
                with self._lock:
                    self._running.discard(guest)
                guest.close()  # frees its contexts; the state's counters stay readable
            if stdin_file is not None:
                os.unlink(stdin_file)
            self.metrics.active.dec()
        seconds = time.perf_counter() - started
        stats = self._record(name, outcome, seconds, state)
        result = RunResult(code, out.text(), err.text(), error, stats)
        if state is not None:
            s = state.stats
            result.token_seconds = list(s.token_seconds)
            if s.prefill_done is not None and s.last_logits is not None and s.decode_tokens:
                result.decode_window = (s.prefill_done, s.last_logits)
        return result

    def _record(self, name: str, outcome: str, seconds: float, state: RealmState | None) -> dict[str, Any]:
        m = self.metrics
        m.requests.labels(name, outcome).inc()
        m.run_seconds.labels(name).inc(seconds)
        stats: dict[str, Any] = {"seconds": round(seconds, 6)}
        if state is None:
            return stats
        s = state.stats
        m.tokens.labels(name).inc(s.decode_tokens)
        m.prompt_tokens.labels(name).inc(s.prefill_tokens)
        for function, calls in s.calls.items():
            m.host_calls.labels(function).inc(calls)
            m.host_seconds.labels(function).inc(s.seconds.get(function, 0.0))
        hits = sum(t.hits for t in state.freed_pools.values())
        misses = sum(t.misses for t in state.freed_pools.values())
        m.pool_hits.inc(hits)
        m.pool_misses.inc(misses)
        stats.update(
            prefill_tokens=s.prefill_tokens,
            decode_tokens=s.decode_tokens,
            prefill_tok_s=_round(s.prefill_tok_s()),
            decode_tok_s=_round(s.decode_tok_s()),
            host_calls=sum(s.calls.values()),
        )
        return stats

    def interrupt_all(self) -> None:
        """Interrupts every running guest (shutdown that cannot wait)."""
        with self._lock:
            running = list(self._running)
        for guest in running:
            guest.interrupt()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _stdin_file(text: str) -> str:
    """A private temporary file holding a run's stdin (WASI reads stdin from a file)."""
    fd, path = tempfile.mkstemp(prefix="bridge-stdin-")
    with os.fdopen(fd, "wb") as f:
        f.write(text.encode("utf-8"))
    return path
