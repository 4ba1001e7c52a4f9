"""The seam to wasmtime: engine configuration, the host-call trampoline, and trap conversion.

Everything else in bridge talks to wasmtime through here, and wasmtime's errors become bridge's errors
here.

Host functions are created with wasmtime's "unchecked" C API (`wasmtime_func_new_unchecked`): the
callback receives the raw argument array, so a call costs one ctypes transition instead of wasmtime-py's
per-argument `Val` boxing. When a host function raises, the trampoline records the exception on the
guest's `TrapSlot` and returns a wasm trap carrying its message; when the trap reaches the embedder,
`convert` re-raises the recorded exception (with the wasm backtrace attached) instead of a bare
"python exception" trap.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

from .errors import GuestExit, GuestTrap, HostError
from .limits import MAX_MEMORY_LIMIT

# A memory's base address must not move while a host call holds numpy views of it. wasmtime moves
# a memory only to grow it past its reservation; with memory_may_move off, growth past the
# reservation fails instead (memory.grow returns -1), so the reservation is also the growth limit.
DEFAULT_RESERVATION = MAX_MEMORY_LIMIT


# The wasm features bridge's engine enables. No threads: host views assume one thread touches a memory.
FEATURES = {
    "wasm_memory64": True,
    "wasm_multi_memory": True,
    "wasm_simd": True,
    "wasm_relaxed_simd": True,
    "wasm_bulk_memory": True,
    "wasm_threads": False,
}


def feature_config(**overrides: bool) -> wasmtime.Config:
    """A Config with bridge's wasm features, some overridden (`bridge features` probes with these)."""
    config = wasmtime.Config()
    for name, on in {**FEATURES, **overrides}.items():
        setattr(config, name, on)
    return config


@functools.lru_cache(maxsize=8)
def make_engine(reservation: int = DEFAULT_RESERVATION) -> wasmtime.Engine:
    """The engine every guest runs on: memory64, multi-memory, and memories that never move."""
    config = feature_config()
    config.memory_may_move = False
    config.memory_reservation = reservation
    config.cranelift_opt_level = "speed"
    return wasmtime.Engine(config)


def memory_accessors(
    store: wasmtime.Store, memory: wasmtime.Memory
) -> tuple[Callable[[], int], Callable[[], int]]:
    """`(size, base)`: functions returning a memory's current byte size and base address.

    They call the C API directly, as the size is read on every guest pointer check. The caller keeps
    `memory` alive for as long as it uses them.
    """
    size_fn = ffi.dll.wasmtime_memory_data_size
    size_fn.restype = ctypes.c_size_t
    size_fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    base_fn = ffi.dll.wasmtime_memory_data
    base_fn.restype = ctypes.c_void_p
    base_fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    context = ctypes.cast(store._context(), ctypes.c_void_p).value
    raw = ctypes.addressof(memory._memory)
    return functools.partial(size_fn, context, raw), functools.partial(base_fn, context, raw)


class TrapSlot:
    """Per-store place where the trampoline leaves the exception that trapped the guest."""

    def __init__(self) -> None:
        self.pending: BaseException | None = None

    def take(self) -> BaseException | None:
        exc, self.pending = self.pending, None
        return exc


_Call = Callable[[Any], None]
# env id -> [per-call path (or None until first use), its binder, the guest's TrapSlot, function name]
_CALLS: dict[int, list[Any]] = {}
_next_id = 1


def _call_host(env: int, caller: Any, args: Any, nargs: int) -> int:
    entry = _CALLS[env]
    call, bind, slot, name = entry
    try:
        if call is None:
            call = entry[0] = bind()
        call(args)
        return 0
    except BaseException as exc:
        if isinstance(exc, (GuestTrap, GuestExit)) or not isinstance(exc, Exception):
            # Guest faults, exits and KeyboardInterrupt travel as they are.
            slot.pending = exc
        else:
            slot.pending = HostError(name, exc)
        message = (
            slot.pending.message if isinstance(slot.pending, GuestTrap) else str(slot.pending) or name
        ).encode()
        trap = ffi.wasmtime_trap_new(ctypes.create_string_buffer(message), len(message))
        return ctypes.cast(trap, ctypes.c_void_p).value or 0


def _release(env: int, calls: dict[int, list[Any]] = _CALLS) -> None:
    # Bound as a default: stores may be freed at interpreter exit, after module globals are cleared.
    calls.pop(env, None)


_trampoline: Any = ffi.wasmtime_func_unchecked_callback_t(_call_host)
_finalize: Any = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(_release)


# wasmtime calls these through raw C pointers for as long as any store lives, which can be after this
# module's globals are torn down at interpreter exit. One extra reference each keeps them alive for
# the life of the process.
for _callback in (_trampoline, _finalize):
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(_callback))
del _callback


def new_func(
    store: wasmtime.Store, functype: wasmtime.FuncType, bind: Callable[[], _Call], slot: TrapSlot, name: str
) -> wasmtime.Func:
    """A wasmtime Func whose calls run `bind()(raw_args)`, `bind` running once on the first call.

    The entry is released with the store.
    """
    global _next_id
    env = _next_id
    _next_id += 1
    _CALLS[env] = [None, bind, slot, name]
    raw = ffi.wasmtime_func_t()
    ffi.wasmtime_func_new_unchecked(
        store._context(), functype.ptr(), _trampoline, env, _finalize, ctypes.byref(raw)
    )
    return wasmtime.Func._from_raw(raw)


def frames_of(err: Exception) -> list[str]:
    """The wasm backtrace of a trap, or of an error that unwound through wasm, innermost first."""
    from wasmtime._trap import Frame, FrameList

    if isinstance(err, wasmtime.Trap):
        frames = err.frames
    elif isinstance(err, wasmtime.WasmtimeError):
        # wasmtime-py exposes no trace for errors (a host function's trap arrives as one).
        holder = FrameList(err)
        ffi.wasmtime_error_wasm_trace(err.ptr(), ctypes.byref(holder.vec))
        frames = [Frame._from_ptr(holder.vec.data[i], holder) for i in range(holder.vec.size)]
    else:
        return []
    return [f.func_name or f"<wasm function {f.func_index}>" for f in frames]


def _trap_text(trap: wasmtime.Trap | wasmtime.WasmtimeError) -> str:
    # wasmtime formats "error while executing at wasm backtrace: ... Caused by: <what>"; the
    # backtrace is reported from `frames`, so keep only the cause.
    text = trap.message if isinstance(trap, wasmtime.Trap) else str(trap)
    if "Caused by:" in text:
        text = text.split("Caused by:", 1)[1]
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " ".join(lines).removeprefix("wasm trap: ") if lines else "trap"


def convert(err: Exception, slot: TrapSlot) -> BaseException:
    """Turns what wasmtime raised from a guest call into bridge's exception."""
    pending = slot.take()
    if isinstance(err, wasmtime.ExitTrap):
        return GuestExit(err.code)
    frames = frames_of(err)
    if pending is not None:
        if isinstance(pending, GuestTrap) and not pending.frames:
            pending.frames = frames
        return pending
    if isinstance(err, wasmtime.Trap):
        code = err.trap_code
        kind = code.name.lower() if code is not None else None
        text = _trap_text(err)
        label = f"guest trapped ({kind}): {text}" if kind else f"guest trapped: {text}"
        return GuestTrap(label, frames, kind)
    if isinstance(err, wasmtime.WasmtimeError):
        return GuestTrap(f"guest failed: {_trap_text(err)}", frames)
    return err


def call_guest(store: wasmtime.Store, func: wasmtime.Func, slot: TrapSlot, *args: Any) -> Any:
    """Calls a guest function. Raises GuestTrap (or BoundsError/HostError), or GuestExit on exit()."""
    try:
        return func(store, *args)
    except (wasmtime.Trap, wasmtime.WasmtimeError) as err:
        exc = convert(err, slot)
    # Raised outside the except block, so wasmtime's bare trap is not chained as its "context";
    # a HostError keeps the original exception as its cause.
    raise exc


def compile_module(engine: wasmtime.Engine, wasm: bytes, origin: str) -> wasmtime.Module:
    """Compiles a module. Raises ModuleError naming `origin` when it is not valid WebAssembly."""
    from .errors import ModuleError

    if wasm[:4] != b"\0asm":
        if wasm.lstrip()[:1] == b"(":
            try:
                return wasmtime.Module(engine, wasm.decode("utf-8"))
            except (wasmtime.WasmtimeError, UnicodeDecodeError) as exc:
                raise ModuleError(
                    f"{origin}: not a valid WebAssembly text module: {first_line(exc)}"
                ) from None
        raise ModuleError(f"{origin}: not a WebAssembly module (no \\0asm magic)")
    try:
        return wasmtime.Module(engine, wasm)
    except wasmtime.WasmtimeError as exc:
        raise ModuleError(f"{origin}: invalid WebAssembly module: {first_line(exc)}") from None


def first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return "; ".join(lines[:3]) if lines else type(exc).__name__
