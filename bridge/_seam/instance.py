"""One guest instance: its store (limits, fuel, epoch control, WASI), linker, memories and exports."""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import wasmtime
from wasmtime import _ffi as ffi

from ..errors import LinkError
from .calls import HostCall, StoreControl, TrapSlot, call_guest, convert, guarded, new_func, watch_store
from .engine import make_engine
from .module import CompiledModule, explain

_VALTYPES = {
    "i32": wasmtime.ValType.i32,
    "i64": wasmtime.ValType.i64,
    "f32": wasmtime.ValType.f32,
    "f64": wasmtime.ValType.f64,
}


@dataclass(frozen=True)
class StoreLimits:
    """The bounds the store enforces. None means no limit (timeout, fuel)."""

    memory_size: int
    table_elements: int
    instances: int
    tables: int
    memories: int
    timeout: float | None = None
    fuel: int | None = None


@dataclass(frozen=True)
class WasiSpec:
    """What the guest sees of the outside world through WASI preview 1."""

    argv: Sequence[str]
    env: Sequence[tuple[str, str]] = ()
    dirs: Sequence[tuple[str, str, bool]] = ()  # (host dir, guest dir, read-only)
    stdout: str | None = None  # a file (or pipe) to write to; None: this process's
    stderr: str | None = None
    stdin: Literal["inherit", "null"] | str = "null"  # or a file to read


def _wasi_config(spec: WasiSpec) -> wasmtime.WasiConfig:
    wasi = wasmtime.WasiConfig()
    wasi.argv = list(spec.argv)
    wasi.env = [list(kv) for kv in spec.env]
    for target, sink in (("stdout", spec.stdout), ("stderr", spec.stderr)):
        if sink is None:
            getattr(wasi, f"inherit_{target}")()
        else:
            setattr(wasi, f"{target}_file", sink)
    if spec.stdin == "inherit":
        wasi.inherit_stdin()
    elif spec.stdin != "null":
        if not os.path.isfile(spec.stdin):
            raise LinkError(f"--stdin {spec.stdin}: no such file")
        wasi.stdin_file = spec.stdin
    for host_dir, guest_dir, readonly in spec.dirs:
        if not os.path.isdir(host_dir):
            raise LinkError(f"--dir {host_dir}: not a directory")
        wasi.preopen_dir(host_dir, guest_dir, not readonly)
    return wasi


@dataclass
class MemoryAccess:
    """A memory's size, base address and growth, as plain functions (read on every pointer check)."""

    size: Callable[[], int]
    base: Callable[[], int]
    grow: Callable[[int], int]  # pages -> previous size in pages; raises LinkError when refused
    is64: bool
    page_size: int
    _keep: Any = field(default=None, repr=False)  # the wasmtime.Memory the functions point into


def _memory_access(store: wasmtime.Store, memory: wasmtime.Memory) -> MemoryAccess:
    # The C API directly: the size is read on every guest pointer check.
    size_fn = ffi.dll.wasmtime_memory_data_size
    size_fn.restype = ctypes.c_size_t
    size_fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    base_fn = ffi.dll.wasmtime_memory_data
    base_fn.restype = ctypes.c_void_p
    base_fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    context = ctypes.cast(store._context(), ctypes.c_void_p).value
    raw = ctypes.addressof(memory._memory)

    def grow(pages: int) -> int:
        try:
            return int(memory.grow(store, pages))
        except wasmtime.WasmtimeError as exc:
            now, maximum = int(memory.size(store)), memory.type(store).limits.max
            if maximum is not None and now + pages > maximum:
                why = f"it has {now} and its maximum is {maximum}"
            else:
                why = f"the store refused it (its memory limit, or the host's): {explain(exc)}"
            raise LinkError(f"memory cannot grow by {pages} pages: {why}") from None

    return MemoryAccess(
        size=functools.partial(size_fn, context, raw),
        base=functools.partial(base_fn, context, raw),
        grow=grow,
        is64=memory.type(store).is_64,
        page_size=memory.page_size(store),
        _keep=memory,
    )


class Instance:
    """A module's instance in a store of its own.

    Set-up: `define_func` and `define_memory` for each import, then `instantiate`. Raises LinkError
    when the store, WASI or an import cannot be set up.
    """

    def __init__(self, module: CompiledModule, limits: StoreLimits, wasi: WasiSpec) -> None:
        engine = make_engine(fuel=limits.fuel is not None)
        self.module = module
        self.slot = TrapSlot()
        self.control = StoreControl(self.slot, limits.timeout, limits.fuel)
        self._limits = limits
        self._compiled = module.compiled(engine)
        self._store: wasmtime.Store | None = wasmtime.Store(engine)
        store = self._store
        store.set_limits(
            memory_size=limits.memory_size,
            table_elements=limits.table_elements,
            instances=limits.instances,
            tables=limits.tables,
            memories=limits.memories,
        )
        if limits.fuel is not None:
            store.set_fuel(limits.fuel)
        watch_store(store, self.control)
        store.set_wasi(_wasi_config(wasi))
        self._linker = wasmtime.Linker(engine)
        self._linker.define_wasi()
        self._calls: list[HostCall] = []
        self._defined: set[tuple[str, str]] = set()
        self._exports: dict[str, Any] = {}

    @property
    def store(self) -> wasmtime.Store:
        if self._store is None:
            raise LinkError(f"{self.module.origin}: the guest is closed")
        return self._store

    # --- set-up --------------------------------------------------------------------------------------

    def define_func(
        self,
        module: str,
        name: str,
        params: Sequence[str],
        results: Sequence[str],
        bind: Callable[[], Callable[[Any], None]],
        label: str,
    ) -> None:
        """Defines host function module.name; `bind()` makes its per-call path on the first call."""
        if (module, name) in self._defined:
            return  # a module may import the same function more than once
        self._defined.add((module, name))
        functype = wasmtime.FuncType([_VALTYPES[t]() for t in params], [_VALTYPES[t]() for t in results])
        entry = HostCall(bind, self.slot, label)
        self._calls.append(entry)
        self._linker.define(self.store, module, name, new_func(self.store, functype, entry))

    def define_memory(self, module: str, name: str, low: int, high: int | None, is64: bool) -> MemoryAccess:
        """Creates memory module.name of `low`..`high` pages. Raises LinkError when it cannot."""
        store = self.store
        try:
            memory = wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(low, high), is_64=is64))
        except wasmtime.WasmtimeError as exc:
            raise LinkError(
                f"{self.module.origin}: cannot create memory `{module}.{name}`: {explain(exc)}"
            ) from None
        if (module, name) not in self._defined:
            self._defined.add((module, name))
            self._linker.define(store, module, name, memory)
        return _memory_access(store, memory)

    def instantiate(self) -> None:
        """Instantiates the module (running its start function under the time limit).

        Raises GuestTrap when the start function traps, LinkError when instantiation fails.
        """
        store = self.store
        try:
            instance = self._instantiate(store)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as err:
            # A trap in the start function is the guest's; anything else is a link failure.
            if isinstance(err, wasmtime.Trap) or self.slot.pending is not None:
                raise convert(err, self.slot, self.control.fuel) from None
            reason = explain(err)
            if "resource limit exceeded" in reason:
                lim = self._limits
                reason += (
                    f" (a guest may create at most {lim.instances} instances, {lim.tables} tables and "
                    f"{lim.memories} memories, each memory up to {lim.memory_size} bytes)"
                )
            raise LinkError(f"{self.module.origin}: cannot instantiate: {reason}") from None
        self._exports = dict(instance.exports(store))

    def _instantiate(self, store: wasmtime.Store) -> wasmtime.Instance:
        with guarded(self.control):
            return self._linker.instantiate(store, self._compiled)

    # --- exports -------------------------------------------------------------------------------------

    def export_names(self) -> list[str]:
        return list(self._exports)

    def function_names(self) -> list[str]:
        return [n for n, e in self._exports.items() if isinstance(e, wasmtime.Func)]

    def has_function(self, name: str) -> bool:
        return isinstance(self._exports.get(name), wasmtime.Func)

    def func_signature(self, name: str) -> tuple[list[str], list[str]] | None:
        """(params, results) of exported function `name`, or None when there is no such function."""
        func = self._exports.get(name)
        if not isinstance(func, wasmtime.Func):
            return None
        ty = func.type(self.store)
        return [str(t) for t in ty.params], [str(t) for t in ty.results]

    def memory_export(self, name: str) -> MemoryAccess | None:
        memory = self._exports.get(name)
        return _memory_access(self.store, memory) if isinstance(memory, wasmtime.Memory) else None

    def call(self, name: str, *args: Any) -> Any:
        """Calls exported function `name` (the caller checked it exists).

        Raises GuestTrap (and subclasses) or GuestExit.
        """
        func = self._exports[name]
        return call_guest(self.store, func, self.control, *args)

    def interrupt(self) -> None:
        """Stops the running guest call at its next epoch check (thread-safe); a no-op when idle."""
        if self.control.depth > 0:
            self.control.interrupt = True

    def fuel_left(self) -> int | None:
        return self.store.get_fuel() if self.control.fuel is not None else None

    def close(self) -> None:
        """Deletes the store; the host functions' entries go with it."""
        self._exports = {}
        self._calls.clear()
        store, self._store = self._store, None
        if store is not None:
            store.close()
