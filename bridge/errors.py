"""The exceptions bridge raises.

Two families, kept apart as wasmtime-py does:

* host-side misuse or failure to link (`DeclarationError`, `LinkError`, `BuildError`, `ModuleError`):
  the program embedding the guest, or its inputs, is wrong;
* a trap in the guest (`GuestTrap` and its subclasses `BoundsError` and `HostError`): the guest ran and
  was stopped. These carry the wasm backtrace.

`GuestExit` is not an error: it is how a guest's `exit(code)` reaches the embedder.
"""

from __future__ import annotations

from collections.abc import Sequence


class BridgeError(Exception):
    """Base class of every error bridge raises on purpose.

    >>> from bridge import BridgeError, Guest
    >>> for source in [b"not wasm", b'(module (func (export "run") unreachable))']:
    ...     try:
    ...         with Guest(source) as guest:
    ...             guest.call("run")
    ...     except BridgeError as e:  # a bad module and a trapping guest alike
    ...         print(type(e).__name__)
    ModuleError
    GuestTrap
    """


class DeclarationError(BridgeError, TypeError):
    """A host function's declaration cannot be compiled (bad hints, unknown count name, ...).

    It is raised where the function is declared, long before a guest calls it:

    >>> from bridge import HostFunctions, i32
    >>> host = HostFunctions()
    >>> @host.function  # doctest: +ELLIPSIS
    ... def double(x: int) -> i32:  # a plain `int` does not say which wasm type
    ...     return 2 * x
    Traceback (most recent call last):
    bridge.errors.DeclarationError: `double`, parameter `x`: hint <class 'int'> does not declare ...
    >>> @host.function
    ... def double(x: i32) -> i32:
    ...     return 2 * x
    >>> "double" in host
    True
    """


class LinkError(BridgeError):
    """The guest imports something the host does not provide, or with another type.

    Every import is checked before the guest starts; a misspelt name gets the nearest host names:

    >>> from bridge import Guest, HostFunctions, i32
    >>> host = HostFunctions()
    >>> @host.function
    ... def log_int(x: i32) -> None:
    ...     print(x)
    >>> Guest(b'(module (import "env" "log_itn" (func (param i32))))', hosts=[host])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    bridge.errors.LinkError: <bytes>: cannot link:
      - guest imports `env.log_itn (i32) -> ()` and no host function has that name; nearest: env.log_int ...
    """


class ModuleError(BridgeError):
    r"""The file is not a WebAssembly module this engine can compile.

    >>> from bridge import Guest
    >>> Guest(b"MZ\x90\x00")  # not wasm at all
    Traceback (most recent call last):
    bridge.errors.ModuleError: <bytes>: not a WebAssembly module (no \0asm magic, and not WebAssembly text)
    >>> garbage = b"\0asm\x01\0\0\0\xff"  # the magic and version, then a section that is not one
    >>> Guest(garbage)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    bridge.errors.ModuleError: <bytes>: invalid WebAssembly module: ... malformed section id (at offset 0x8)
    """


class BuildError(BridgeError):
    """The guest toolchain failed to compile or link C sources.

    Its message carries the compiler's own:

    >>> import tempfile
    >>> from pathlib import Path
    >>> from bridge import build
    >>> with tempfile.TemporaryDirectory() as tmp:  # doctest: +ELLIPSIS
    ...     source = Path(tmp, "main.c")
    ...     _ = source.write_text("int main(void) { return 0 }")
    ...     build([source], Path(tmp, "main.wasm"))
    Traceback (most recent call last):
    bridge.errors.BuildError: compiling .../main.c for wasm32 failed:
    .../main.c:1:26: error: expected ';' after return statement
    ...
    """


class GuestTrap(BridgeError):
    """The guest trapped: a wasm trap of its own, or a host function stopped it.

    `frames` holds the wasm backtrace, innermost first: each frame's function name, or
    "<wasm function N>" when the module has no names section (empty when wasmtime recorded none).

    >>> from bridge import Guest
    >>> guest = Guest(b'''(module
    ...   (func $divide (export "divide") (param i32 i32) (result i32)
    ...     (i32.div_s (local.get 0) (local.get 1))))''')
    >>> guest.call("divide", 7, 2)
    3
    >>> guest.call("divide", 7, 0)
    Traceback (most recent call last):
    bridge.errors.GuestTrap: guest trapped (integer_division_by_zero): integer divide by zero
    wasm backtrace:
      0: divide
    >>> guest.call("divide", 8, 2)  # a trap ends the call, not the guest
    4
    >>> guest.close()
    """

    def __init__(self, message: str, frames: Sequence[str] = (), trap_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.frames: list[str] = list(frames)
        self.trap_code = trap_code

    def __str__(self) -> str:
        if not self.frames:
            return self.message
        trace = "\n".join(f"  {i}: {frame}" for i, frame in enumerate(self.frames))
        return f"{self.message}\nwasm backtrace:\n{trace}"


class BoundsError(GuestTrap):
    """A guest pointer range lies outside the guest's memory.

    Raised inside a host call, it traps the guest; the message names the host function, the
    parameter, the pointer in hex, the byte length and the memory size.

    >>> import numpy as np
    >>> from typing import Annotated
    >>> from numpy.typing import NDArray
    >>> from bridge import BoundsError, Guest, HostFunctions, In, u32
    >>> host = HostFunctions()
    >>> @host.function
    ... def checksum(data: Annotated[NDArray[np.uint8], In("n")], n: u32) -> u32:
    ...     return int(data.sum())
    >>> guest = Guest(b'''(module (import "env" "checksum" (func $checksum (param i32 i32) (result i32)))
    ...   (memory (export "memory") 1)
    ...   (func $run (export "run") (param i32 i32) (result i32)
    ...     (call $checksum (local.get 0) (local.get 1))))''', hosts=[host])
    >>> guest.call("run", 0, 16)
    0
    >>> guest.call("run", 0xFFFA, 16)  # past the end of the 64 KiB memory  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    bridge.errors.BoundsError: host function `checksum`, parameter `data`: range is outside guest memory: ...
    >>> try:
    ...     guest.call("run", -16, 8)  # the i32 -16 is the unsigned address 0xfffffff0
    ... except BoundsError as e:
    ...     print(e.function, e.parameter, hex(e.pointer), e.length, e.memory_size, e.frames)
    checksum data 0xfffffff0 8 65536 ['run']
    >>> guest.close()
    """

    def __init__(
        self,
        message: str,
        *,
        function: str | None = None,
        parameter: str | None = None,
        pointer: int = 0,
        length: int = 0,
        memory_size: int = 0,
    ) -> None:
        super().__init__(message)
        self.function = function
        self.parameter = parameter
        self.pointer = pointer
        self.length = length
        self.memory_size = memory_size


class ResultError(TypeError):
    """A host function returned a value its declared result type cannot carry (reported as such, not as
    if the function had raised)."""


class HostError(GuestTrap):
    """A host function raised a Python exception, which trapped the guest.

    The original exception is `__cause__` (and `original`).

    >>> from bridge import Guest, HostError, HostFunctions, i32
    >>> host = HostFunctions()
    >>> @host.function
    ... def digit(c: i32) -> i32:
    ...     if not chr(c).isdigit():
    ...         raise ValueError(f"{chr(c)!r} is not a digit")
    ...     return int(chr(c))
    >>> guest = Guest(b'''(module (import "env" "digit" (func $digit (param i32) (result i32)))
    ...   (func $run (export "run") (param i32) (result i32) (call $digit (local.get 0))))''', hosts=[host])
    >>> guest.call("run", ord("7"))
    7
    >>> guest.call("run", ord("x"))
    Traceback (most recent call last):
    bridge.errors.HostError: host function `digit` raised ValueError: 'x' is not a digit
    wasm backtrace:
      0: run
    >>> try:
    ...     guest.call("run", ord("x"))
    ... except HostError as e:
    ...     print(repr(e.original), e.__cause__ is e.original)
    ValueError("'x' is not a digit") True
    >>> guest.close()
    """

    def __init__(self, function: str, original: BaseException) -> None:
        detail = str(original)
        name = type(original).__name__
        if isinstance(original, ResultError):  # the function returned, with a value its declaration refuses
            super().__init__(f"host function `{function}` returned a wrong value: {detail}")
        else:
            super().__init__(f"host function `{function}` raised {name}" + (f": {detail}" if detail else ""))
        self.function = function
        self.original = original
        self.__cause__ = original


class GuestExit(BridgeError):
    """The guest called exit(code). `code` is its exit status.

    >>> from bridge import Guest, GuestExit
    >>> guest = Guest(b'''(module
    ...   (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
    ...   (memory (export "memory") 1)
    ...   (func (export "_start") (call $proc_exit (i32.const 3))))''')
    >>> guest.run()  # a command: `run` returns the exit status
    3
    >>> try:
    ...     guest.call("_start")
    ... except GuestExit as e:
    ...     print(e, e.code)
    guest exited with code 3 3
    >>> guest.close()
    """

    def __init__(self, code: int) -> None:
        super().__init__(f"guest exited with code {code}")
        self.code = code


class GuestTimeout(GuestTrap):
    """The guest ran past its wall-clock limit (`timeout`, `--timeout`) and was stopped. `limit` is it.

    >>> from bridge import Guest, Limits
    >>> guest = Guest(b'''(module
    ...   (func $spin (export "spin") (loop $forever (br $forever)))
    ...   (func (export "answer") (result i32) (i32.const 42)))''', limits=Limits(timeout=0.05))
    >>> guest.call("spin")
    Traceback (most recent call last):
    bridge.errors.GuestTimeout: guest exceeded its time limit of 0.05 s (--timeout) and was stopped
    wasm backtrace:
      0: spin
    >>> guest.call("answer")  # the limit is per call: the next call has its own 0.05 s
    42
    >>> guest.close()
    """

    def __init__(self, message: str, frames: Sequence[str] = (), *, limit: float = 0.0) -> None:
        super().__init__(message, frames, "interrupt")
        self.limit = limit


class GuestInterrupted(GuestTrap):
    """The guest was interrupted (Ctrl-C, or `Guest.interrupt()` from another thread).

    >>> import threading
    >>> from bridge import Guest
    >>> guest = Guest(b'(module (func $spin (export "spin") (loop $forever (br $forever))))', timeout=30)
    >>> threading.Timer(0.1, guest.interrupt).start()  # (the timeout is only a backstop)
    >>> guest.call("spin")
    Traceback (most recent call last):
    bridge.errors.GuestInterrupted: guest interrupted
    wasm backtrace:
      0: spin
    >>> guest.close()
    """

    def __init__(self, message: str = "guest interrupted", frames: Sequence[str] = ()) -> None:
        super().__init__(message, frames, "interrupt")


class OutOfFuel(GuestTrap):
    """The guest spent its fuel budget (`fuel`, `--fuel`): a deterministic instruction limit.

    >>> from bridge import Guest, Limits
    >>> guest = Guest(b'''(module
    ...   (func $spin (export "spin") (loop $forever (br $forever)))
    ...   (func (export "answer") (result i32) (i32.const 42)))''', limits=Limits(fuel=1000))
    >>> guest.call("answer"), guest.fuel_left  # the same count on every run and machine
    (42, 998)
    >>> guest.call("spin")
    Traceback (most recent call last):
    bridge.errors.OutOfFuel: guest ran out of fuel: its budget of 1000 units (--fuel) is spent
    wasm backtrace:
      0: spin
    >>> guest.fuel_left  # the budget is for the guest's whole life
    0
    >>> guest.close()
    """

    def __init__(self, message: str, frames: Sequence[str] = ()) -> None:
        super().__init__(message, frames, "out_of_fuel")
