"""Calls across the seam: the host-call trampoline, time limits and interrupts, error conversion.

Host functions are created with wasmtime's "unchecked" C API (`wasmtime_func_new_unchecked`): the
callback receives the raw argument array, so a call costs one ctypes transition instead of wasmtime-py's
per-argument `Val` boxing. When a host function raises, the trampoline records the exception on the
store's `TrapSlot` and returns a wasm trap carrying its message; when the trap reaches the embedder,
`convert` re-raises the recorded exception (with the wasm backtrace attached) instead of a bare
"python exception" trap.

Nothing global holds a guest alive: wasmtime's C side knows each host function and each store only by
an integer, and the tables here map those integers to *weak* references. The instance owns the entries;
when it is closed or collected, its store is deleted and wasmtime's finalizers drop the integers.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import wasmtime
from wasmtime import _bindings
from wasmtime import _ffi as ffi

from ..errors import GuestExit, GuestInterrupted, GuestTimeout, GuestTrap, HostError, OutOfFuel
from .engine import TICKER


class TrapSlot:
    """Per-store place where the trampoline (or the epoch callback) leaves what stopped the guest."""

    def __init__(self) -> None:
        self.pending: BaseException | None = None

    def take(self) -> BaseException | None:
        exc, self.pending = self.pending, None
        return exc


_Call = Callable[[Any], None]


class HostCall:
    """One host function of one instance: its per-call path, bound on first use."""

    __slots__ = ("__weakref__", "bind", "call", "name", "slot")

    def __init__(self, bind: Callable[[], _Call], slot: TrapSlot, name: str) -> None:
        self.call: _Call | None = None
        self.bind = bind
        self.slot = slot
        self.name = name


class StoreControl:
    """What a store's epoch callback decides with: the time limit, interrupts, the fuel budget."""

    __slots__ = ("__weakref__", "deadline", "depth", "fuel", "interrupt", "slot", "timeout")

    def __init__(self, slot: TrapSlot, timeout: float | None, fuel: int | None) -> None:
        self.slot = slot
        self.timeout = timeout
        self.fuel = fuel
        self.deadline: float | None = None
        self.depth = 0  # nested guest calls (host -> guest re-entry)
        self.interrupt = False

    def stop_reason(self) -> BaseException | None:
        if self.interrupt or _INTERRUPT_ALL[0]:
            return GuestInterrupted("guest interrupted")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return GuestTimeout(
                f"guest exceeded its time limit of {self.timeout:g} s (--timeout) and was stopped",
                limit=self.timeout or 0.0,
            )
        return None


# wasmtime calls back with these integers; the objects live as long as their instance does.
_CALLS: dict[int, weakref.ref[HostCall]] = {}
_CONTROLS: dict[int, weakref.ref[StoreControl]] = {}
_ids = itertools.count(1)
# Set by interrupt_all (Ctrl-C): every running guest stops at its next epoch check.
_INTERRUPT_ALL = [False]


def interrupt_all() -> None:
    """Asks every running guest to stop (they trap with GuestInterrupted). Safe from signal handlers."""
    _INTERRUPT_ALL[0] = True


def reset_interrupt() -> None:
    _INTERRUPT_ALL[0] = False


def interrupted() -> bool:
    return _INTERRUPT_ALL[0]


def in_guest() -> bool:
    """True while some guest call is running (in wasm or in a host function it called)."""
    return TICKER.active


def _error(message: str) -> int:
    data = message.encode()
    trap = ffi.wasmtime_trap_new(ctypes.create_string_buffer(data), len(data))
    return ctypes.cast(trap, ctypes.c_void_p).value or 0


def _call_host(env: int, caller: Any, args: Any, nargs: int) -> int:
    ref = _CALLS.get(env)
    entry = ref() if ref is not None else None
    if entry is None:
        return _error("host function called after its guest was closed")
    slot = entry.slot
    try:
        call = entry.call
        if call is None:
            call = entry.call = entry.bind()
        call(args)
        return 0
    except BaseException as exc:
        if isinstance(exc, (GuestTrap, GuestExit)) or not isinstance(exc, Exception):
            # Guest faults, exits and KeyboardInterrupt travel as they are.
            slot.pending = exc
        else:
            slot.pending = HostError(entry.name, exc)
        pending = slot.pending
        return _error(pending.message if isinstance(pending, GuestTrap) else str(pending) or entry.name)


def _on_epoch(context: Any, data: int | None, delta: Any, kind: Any) -> int:
    delta[0] = 1  # check again at the next tick
    kind[0] = 0  # WASMTIME_UPDATE_DEADLINE_CONTINUE
    ref = _CONTROLS.get(data or 0)
    control = ref() if ref is not None else None
    if control is None:
        return 0
    reason = control.stop_reason()
    if reason is None:
        return 0
    control.slot.pending = reason
    return _error(str(reason))


def _release_call(env: int, calls: dict[int, weakref.ref[HostCall]] = _CALLS) -> None:
    # Bound as a default: stores may be freed at interpreter exit, after module globals are cleared.
    calls.pop(env, None)


def _release_control(key: int, controls: dict[int, weakref.ref[StoreControl]] = _CONTROLS) -> None:
    controls.pop(key or 0, None)


_trampoline: Any = ffi.wasmtime_func_unchecked_callback_t(_call_host)
_finalize_call: Any = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(_release_call)
_epoch_callback: Any = _bindings._wasmtime_store_epoch_deadline_callback.argtypes[1](_on_epoch)
_finalize_control: Any = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(_release_control)

# wasmtime calls these through raw C pointers for as long as any store lives, which can be after this
# module's globals are torn down at interpreter exit. One extra reference each keeps them alive for
# the life of the process.
for _callback in (_trampoline, _finalize_call, _epoch_callback, _finalize_control):
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(_callback))
del _callback


def new_func(store: wasmtime.Store, functype: wasmtime.FuncType, entry: HostCall) -> wasmtime.Func:
    """A wasmtime Func whose calls run `entry`. The caller keeps `entry` alive (it is held weakly)."""
    env = next(_ids)
    _CALLS[env] = weakref.ref(entry)
    raw = ffi.wasmtime_func_t()
    ffi.wasmtime_func_new_unchecked(
        store._context(), functype.ptr(), _trampoline, env, _finalize_call, ctypes.byref(raw)
    )
    return wasmtime.Func._from_raw(raw)


def watch_store(store: wasmtime.Store, control: StoreControl) -> None:
    """Installs the epoch callback that enforces `control` on `store` (held weakly)."""
    key = next(_ids)
    _CONTROLS[key] = weakref.ref(control)
    ffi.wasmtime_store_epoch_deadline_callback(store.ptr(), _epoch_callback, key, _finalize_control)
    store.set_epoch_deadline(1)


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


def convert(err: Exception, slot: TrapSlot, fuel: int | None = None) -> BaseException:
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
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            budget = f"its budget of {fuel} units" if fuel is not None else "its budget"
            return OutOfFuel(f"guest ran out of fuel: {budget} (--fuel) is spent", frames)
        kind = code.name.lower() if code is not None else None
        text = _trap_text(err)
        label = f"guest trapped ({kind}): {text}" if kind else f"guest trapped: {text}"
        return GuestTrap(label, frames, kind)
    if isinstance(err, wasmtime.WasmtimeError):
        return GuestTrap(f"guest failed: {_trap_text(err)}", frames)
    return err


@contextlib.contextmanager
def guarded(control: StoreControl) -> Iterator[None]:
    """Runs a guest call under `control`: the time limit starts at the outermost call, epochs tick."""
    outer = control.depth == 0
    if outer and control.timeout is not None:
        control.deadline = time.monotonic() + control.timeout
    control.depth += 1
    TICKER.enter()
    try:
        yield
    finally:
        TICKER.leave()
        control.depth -= 1
        if outer:
            control.deadline = None
            control.interrupt = False  # an interrupt stops the call it was meant for, not the next


def call_guest(store: wasmtime.Store, func: wasmtime.Func, control: StoreControl, *args: Any) -> Any:
    """Calls a guest function under `control`'s time limit.

    Raises GuestTrap (BoundsError, HostError, GuestTimeout, GuestInterrupted, OutOfFuel), or GuestExit.
    """
    try:
        with guarded(control):
            return func(store, *args)
    except (wasmtime.Trap, wasmtime.WasmtimeError) as err:
        exc = convert(err, control.slot, control.fuel)
    # Raised outside the except block, so wasmtime's bare trap is not chained as its "context";
    # a HostError keeps the original exception as its cause.
    raise exc
