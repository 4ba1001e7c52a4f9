"""Chrome Trace Event files of host calls (`--trace FILE.json`), which Perfetto and chrome://tracing load.

Each host call is one complete event ("ph": "X") named after the function: its scalar arguments
(handles, sizes, counts; never the data behind a pointer), the bytes it viewed in and out of guest memory,
and the guest or tenant (the event's thread). Realm kernels add nested "kernel" events on the same thread.
Tracing off costs nothing: a guest binds its host functions without the tracing wrapper, and the kernels
test one module global.

The events a file holds are bounded (MAX_EVENTS); past that they are counted, not kept.

>>> import json, tempfile
>>> tracer = Tracer()
>>> tracer.span("realm_tokenize", 1_000, 4_000, {"model": 1, "text_len": 5}, bytes_in=5, bytes_out=8)
>>> path = Path(tempfile.mkdtemp()) / "t.json"
>>> tracer.write(path)
>>> [e["name"] for e in json.loads(path.read_text())["traceEvents"] if e["ph"] == "X"]
['realm_tokenize']
>>> summary(path)
[('realm_tokenize', 1, 0.003, 0.003)]
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

MAX_EVENTS = 1 << 18  # per trace: about 200 MB of host memory and 60 MB of JSON at most

# The tracer the realm kernels report to, when one is active (set by `activate`).
ACTIVE: Tracer | None = None


class Tracer:
    """Collects trace events from any thread; `write` saves them as a Chrome Trace Event file."""

    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        self.max_events = max_events
        self.events: list[dict[str, Any]] = []
        self.dropped = 0
        self._origin = time.perf_counter_ns()
        self._pid = os.getpid()
        self._tids: dict[int, int] = {}
        self._names: dict[int, str] = {}
        self._lock = threading.Lock()

    def now(self) -> int:
        """A timestamp for `span`: perf_counter nanoseconds."""
        return time.perf_counter_ns()

    def _tid(self) -> int:
        ident = threading.get_ident()
        tid = self._tids.get(ident)
        if tid is None:
            with self._lock:
                tid = self._tids.setdefault(ident, len(self._tids) + 1)
        return tid

    def name_thread(self, name: str) -> None:
        """Names the calling thread's track (a guest, a tenant)."""
        self._names[self._tid()] = name

    def span(
        self,
        name: str,
        start_ns: int,
        end_ns: int,
        args: dict[str, Any] | None = None,
        *,
        category: str = "host",
        bytes_in: int | None = None,
        bytes_out: int | None = None,
    ) -> None:
        """One complete event on the calling thread, from start_ns to end_ns (perf_counter_ns)."""
        if len(self.events) >= self.max_events:
            self.dropped += 1
            return
        event_args = dict(args or {})
        if bytes_in is not None:
            event_args["bytes_in"] = bytes_in
        if bytes_out is not None:
            event_args["bytes_out"] = bytes_out
        self.events.append(
            {
                "name": name,
                "cat": category,
                "ph": "X",
                "ts": (start_ns - self._origin) / 1000,
                "dur": (end_ns - start_ns) / 1000,
                "pid": self._pid,
                "tid": self._tid(),
                "args": event_args,
            }
        )

    def document(self) -> dict[str, Any]:
        """The trace as a Chrome Trace Event JSON object."""
        names = [
            {"name": "thread_name", "ph": "M", "pid": self._pid, "tid": tid, "args": {"name": name}}
            for tid, name in sorted(self._names.items())
        ]
        process = {"name": "process_name", "ph": "M", "pid": self._pid, "tid": 0, "args": {"name": "bridge"}}
        return {
            "traceEvents": [process, *names, *self.events],
            "displayTimeUnit": "ms",
            "otherData": {"producer": "bridge", "dropped_events": self.dropped},
        }

    def write(self, path: str | os.PathLike[str]) -> None:
        """Writes the trace to `path`."""
        with open(path, "w", encoding="utf-8") as out:
            self.write_to(out)

    def write_to(self, out: IO[str]) -> None:
        """Writes the trace into an open text file."""
        json.dump(self.document(), out, separators=(",", ":"))


def activate(tracer: Tracer | None) -> None:
    """Makes `tracer` the one the realm kernels report to (None: none)."""
    global ACTIVE
    ACTIVE = tracer


@contextlib.contextmanager
def session(path: str | os.PathLike[str] | None, thread: str | None = None) -> Iterator[Tracer | None]:
    """A tracer for the block when `path` is given (None otherwise): active for the kernels, the calling
    thread named `thread`, and written to `path` when the block ends, however it ends. The file is
    opened first, so a path that cannot be written fails (OSError) before anything runs."""
    if not path:
        yield None
        return
    with open(path, "w", encoding="utf-8") as out:
        tracer = Tracer()
        if thread:
            tracer.name_thread(thread)
        activate(tracer)
        try:
            yield tracer
        finally:
            activate(None)
            tracer.write_to(out)


def summary(path: str | os.PathLike[str]) -> list[tuple[str, int, float, float]]:
    """(name, calls, total ms, ms per call) per event name in a trace file, most total time first.
    Raises ValueError when the file is not a Chrome Trace Event file."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable trace file ({exc})") from None
    except RecursionError:  # arrays nested deeper than the JSON parser goes
        raise ValueError(f"{path}: not a trace file (nested too deeply)") from None
    events = data.get("traceEvents") if isinstance(data, dict) else data
    if not isinstance(events, list):
        raise ValueError(f"{path}: no traceEvents array")
    calls: dict[str, int] = defaultdict(int)
    total: dict[str, float] = defaultdict(float)
    for event in events:
        if not (isinstance(event, dict) and event.get("ph") == "X" and isinstance(event.get("name"), str)):
            continue
        duration = event.get("dur")
        if isinstance(duration, (int, float)) and math.isfinite(duration) and duration >= 0:
            calls[event["name"]] += 1
            total[event["name"]] += float(duration) / 1000
    rows = [(name, calls[name], total[name], total[name] / calls[name]) for name in calls]
    return sorted(rows, key=lambda row: -row[2])


def format_summary(rows: list[tuple[str, int, float, float]]) -> str:
    lines = [f"{'name':<28} {'calls':>8} {'total ms':>12} {'ms/call':>10}"]
    lines += [f"{name:<28} {n:>8} {ms:>12.1f} {per:>10.3f}" for name, n, ms, per in rows]
    return "\n".join(lines)


def plot_summary(rows: list[tuple[str, int, float, float]], png: str | os.PathLike[str]) -> None:
    """A bar chart of total time per name, saved as PNG (needs the `plot` extra: matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("the PNG needs matplotlib: pip install 'bridge[plot]'") from None
    names = [row[0] for row in rows][::-1]
    values = [row[2] for row in rows][::-1]
    # Kernel spans are nested inside host calls: another colour, so their time is not read as extra.
    colours = ["tab:orange" if name.startswith("kernel ") else "tab:blue" for name in names]
    figure, axes = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.2))
    axes.barh(names, values, color=colours)
    axes.set_xlabel("total ms")
    axes.set_title("time per host function (blue), and in the kernels inside them (orange)")
    figure.tight_layout()
    figure.savefig(png)
    plt.close(figure)
