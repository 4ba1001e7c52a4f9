"""Engines and the epoch ticker.

A memory's base address must not move while a host call holds numpy views of it. wasmtime moves a
memory only to grow it past its reservation; with memory_may_move off, growth past the reservation
fails instead (memory.grow returns -1), so the reservation is also the growth limit.

Every engine runs with epoch interruption: compiled code checks the engine's epoch at loop heads and
function entries, and the per-store callback (`calls.on_epoch`) decides whether the guest goes on, has
run past its time limit, or was interrupted. The epoch only advances while some guest is running (the
ticker thread sleeps otherwise), so an idle host costs nothing. Fuel, being dearer (a counter update per
basic block), is compiled in only for guests that ask for a fuel budget.
"""

from __future__ import annotations

import functools
import threading
import time

import wasmtime

from ..limits import MAX_MEMORY_LIMIT

DEFAULT_RESERVATION = MAX_MEMORY_LIMIT
# How often a running guest's epoch callback runs: the granularity of --timeout and of Ctrl-C.
TICK_SECONDS = 0.02

# The wasm features bridge's engine enables. No threads: host views assume one thread touches a memory.
FEATURES = {
    "wasm_memory64": True,
    "wasm_multi_memory": True,
    "wasm_simd": True,
    "wasm_relaxed_simd": True,
    "wasm_bulk_memory": True,
    "wasm_threads": False,
}

# `bridge features` names -> the settings that switch each off (a feature others build on goes off with
# them: relaxed SIMD needs SIMD). None: it cannot be switched off (wasmtime aborts the process on a
# config without bulk memory, which reference types and more depend on).
FEATURE_SETTINGS: dict[str, tuple[str, ...] | None] = {
    "memory64": ("wasm_memory64",),
    "multi-memory": ("wasm_multi_memory",),
    "simd": ("wasm_relaxed_simd", "wasm_simd"),
    "relaxed-simd": ("wasm_relaxed_simd",),
    "threads": ("wasm_threads",),
    "bulk-memory": None,
}


def feature_config(**overrides: bool) -> wasmtime.Config:
    """A Config with bridge's wasm features, some overridden (`bridge features` probes with these)."""
    config = wasmtime.Config()
    for name, on in {**FEATURES, **overrides}.items():
        setattr(config, name, on)
    return config


@functools.lru_cache(maxsize=8)
def make_engine(fuel: bool = False, reservation: int = DEFAULT_RESERVATION) -> wasmtime.Engine:
    """The engine guests run on: memory64, multi-memory, memories that never move, epochs; fuel if asked."""
    config = feature_config()
    config.memory_may_move = False
    config.memory_reservation = reservation
    config.cranelift_opt_level = "speed"
    config.epoch_interruption = True
    config.consume_fuel = fuel
    engine = wasmtime.Engine(config)
    TICKER.engines.append(engine)
    return engine


class _Ticker:
    """Advances every engine's epoch each TICK_SECONDS while at least one guest call is running."""

    def __init__(self) -> None:
        self.engines: list[wasmtime.Engine] = []
        self._active = 0
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def enter(self) -> None:
        with self._wake:
            self._active += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="bridge-epoch", daemon=True)
                self._thread.start()
            self._wake.notify()

    def leave(self) -> None:
        with self._wake:
            self._active -= 1

    @property
    def active(self) -> bool:
        return self._active > 0

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._active:
                    self._wake.wait()
            time.sleep(TICK_SECONDS)
            for engine in list(self.engines):
                engine.increment_epoch()


TICKER = _Ticker()
