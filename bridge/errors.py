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
    """Base class of every error bridge raises on purpose."""


class DeclarationError(BridgeError, TypeError):
    """A host function's declaration cannot be compiled (bad hints, unknown count name, ...)."""


class LinkError(BridgeError):
    """The guest imports something the host does not provide, or with another type."""


class ModuleError(BridgeError):
    """The file is not a WebAssembly module this engine can compile."""


class BuildError(BridgeError):
    """The guest toolchain failed to compile or link C sources."""


class GuestTrap(BridgeError):
    """The guest trapped: a wasm trap of its own, or a host function stopped it.

    `frames` holds the wasm backtrace, innermost first, as "module!function" strings
    (empty when wasmtime recorded none).
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
    """The guest called exit(code). `code` is its exit status."""

    def __init__(self, code: int) -> None:
        super().__init__(f"guest exited with code {code}")
        self.code = code


class GuestTimeout(GuestTrap):
    """The guest ran past its wall-clock limit (`timeout`, `--timeout`) and was stopped. `limit` is it."""

    def __init__(self, message: str, frames: Sequence[str] = (), *, limit: float = 0.0) -> None:
        super().__init__(message, frames, "interrupt")
        self.limit = limit


class GuestInterrupted(GuestTrap):
    """The guest was interrupted (Ctrl-C, or `Guest.interrupt()` from another thread)."""

    def __init__(self, message: str = "guest interrupted", frames: Sequence[str] = ()) -> None:
        super().__init__(message, frames, "interrupt")


class OutOfFuel(GuestTrap):
    """The guest spent its fuel budget (`fuel`, `--fuel`): a deterministic instruction limit."""

    def __init__(self, message: str, frames: Sequence[str] = ()) -> None:
        super().__init__(message, frames, "out_of_fuel")
