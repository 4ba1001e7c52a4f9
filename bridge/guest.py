"""Loading, linking and running a guest module.

`load_module` compiles a `.wasm` (or `.wat`) file once; `Guest` is one instance of it in its own store,
linked against WASI preview 1, bridge's own runtime imports (module "bridge", used by freestanding
wasm64 guests for output, arguments and exit) and any number of `HostFunctions` registries.

Imports are checked before instantiation, so a missing or mistyped host function is reported with
what the guest wants, what the host has, and the nearest names, instead of wasmtime's first failure.
"""

from __future__ import annotations

import codecs
import dataclasses
import difflib
import io
import os
import select
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Annotated, Any

import numpy as np
from numpy.typing import NDArray

from . import _seam
from .errors import GuestExit, LinkError
from .hints import In, MemoryRef, Out, i32, u32, usize
from .host import Context, HostFunction, HostFunctions
from .limits import HostMemory, Limits
from .memory import GuestMemory
from .trace import Tracer
from .wasmfile import MemoryInfo, read_memories

WASI_MODULE = "wasi_snapshot_preview1"


@dataclass
class GuestModule:
    """A validated guest module and what bridge read from its binary.

    Compile once with `load_module`, then start as many guests from it as you like; each has its own
    store, memory and globals:

    >>> module = load_module(b'''(module
    ...   (global $n (mut i32) (i32.const 0))
    ...   (func (export "count") (result i32)
    ...     (global.set $n (i32.add (global.get $n) (i32.const 1)))
    ...     (global.get $n)))''')
    >>> module.origin, module.is64, [e.describe() for e in module.exports]
    ('<bytes>', False, ['count () -> i32'])
    >>> with Guest(module) as a, Guest(module) as b:
    ...     print(a.call("count"), a.call("count"), b.call("count"))
    1 2 1
    """

    compiled: _seam.CompiledModule
    memories: list[MemoryInfo]

    @property
    def wasm(self) -> bytes:
        return self.compiled.wasm

    @property
    def origin(self) -> str:
        return self.compiled.origin

    @property
    def imports(self) -> list[_seam.ExternInfo]:
        return self.compiled.imports

    @property
    def exports(self) -> list[_seam.ExternInfo]:
        return self.compiled.exports

    @property
    def is64(self) -> bool:
        """True when its default memory is a 64-bit memory."""
        default = _default_memory(self.memories)
        return default is not None and default.is64


def load_module(
    source: str | os.PathLike[str] | bytes | bytearray, *, origin: str | None = None
) -> GuestModule:
    """Reads, validates and compiles a guest module from a path or from bytes (binary or text format).

    `origin` names it in messages (default: the path). Raises ModuleError when the file is missing, is
    not a regular file, or is not a valid module; the message carries wasmtime's whole reason.

    >>> module = load_module(b'(module (func (export "answer") (result i32) (i32.const 42)))')
    >>> [e.describe() for e in module.exports]
    ['answer () -> i32']
    >>> load_module(b"(module (func")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    bridge.errors.ModuleError: <bytes>: not a valid WebAssembly text module: ...
    """
    if isinstance(source, (bytes, bytearray)):
        data, origin = bytes(source), origin or "<bytes>"
    else:
        path = os.fspath(source)
        origin = origin or path
        data = _seam.read_module_file(path, origin)
    compiled = _seam.compile_module(data, origin)
    return GuestModule(compiled, read_memories(compiled.wasm, origin))


def _default_memory(memories: Sequence[MemoryInfo]) -> MemoryInfo | None:
    for m in memories:
        if "memory" in m.exports:
            return m
    return memories[0] if memories else None


def _find_memory(memories: Sequence[MemoryInfo], ref: MemoryRef) -> MemoryInfo | None:
    if ref is None:
        return _default_memory(memories)
    if isinstance(ref, int):
        return memories[ref] if 0 <= ref < len(memories) else None
    for m in memories:
        if ref in m.exports or (m.imported_as and ref in (m.imported_as[1], ".".join(m.imported_as))):
            return m
    return None


# --- bridge's own runtime imports -------------------------------------------------------------------


Sink = Callable[[bytes], None]


def _fd_writer(fd: int) -> Sink:
    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    return write


@dataclass
class _Runtime:
    """The state behind the `bridge.*` imports: the guest's arguments and where its output goes."""

    argv: list[str]
    writers: dict[int, Sink] = field(default_factory=lambda: {1: _fd_writer(1), 2: _fd_writer(2)})
    stdin: str = "null"  # "null", "inherit" or a file path: what bridge.read(0, ...) reads
    _stdin_fd: int | None = None  # the file opened for a path, on first read

    def read_stdin(self, cap: int) -> bytes:
        """Up to `cap` bytes of the guest's stdin; b"" at its end (and always for "null")."""
        if self.stdin == "null" or cap == 0:
            return b""
        if self.stdin == "inherit":
            return os.read(0, cap)
        if self._stdin_fd is None:
            self._stdin_fd = os.open(self.stdin, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        return os.read(self._stdin_fd, cap)

    def close(self) -> None:
        if self._stdin_fd is not None:
            os.close(self._stdin_fd)
            self._stdin_fd = None


# The wasm64 runtime ABI: the `bridge.*` imports below, for guests without WASI (libc64, Zig's bridge.zig,
# hand-written modules). 1.1 added `read`.
RUNTIME_ABI_VERSION = 1
RUNTIME_ABI_MINOR_VERSION = 1

system = HostFunctions("bridge")


def _runtime(ctx: Context) -> _Runtime:
    state = ctx.state
    assert isinstance(state, _Runtime)
    return state


@system.function(name="write")
def _write(ctx: Context, fd: i32, data: Annotated[NDArray[np.uint8], In("length")], length: usize) -> i32:
    """Writes to the guest's stdout (1) or stderr (2); returns the bytes written, -1 for another fd."""
    write = _runtime(ctx).writers.get(fd)
    if write is None:
        return -1
    write(data.tobytes())
    return len(data)


@system.function(name="read")
def _read(ctx: Context, fd: i32, out: Annotated[NDArray[np.uint8], Out("cap")], cap: usize) -> i32:
    """Reads up to cap bytes of the guest's stdin (fd 0) -> bytes read, 0 at its end, -1 on failure.

    -1 also for another fd. Added in runtime ABI 1.1."""
    if fd != 0:
        return -1
    try:
        data = _runtime(ctx).read_stdin(min(cap, 1 << 16))
    except OSError:
        return -1
    out[: len(data)] = np.frombuffer(data, np.uint8)
    return len(data)


@system.function(name="exit")
def _exit(code: i32) -> None:
    """Ends the guest with exit status `code`."""
    raise GuestExit(code)


@system.function(name="args_count")
def _args_count(ctx: Context) -> i32:
    """How many arguments the guest has, argv[0] included."""
    return len(_runtime(ctx).argv)


@system.function(name="arg_get")
def _arg_get(ctx: Context, index: u32, out: Annotated[NDArray[np.uint8], Out("cap")], cap: usize) -> i32:
    """Argument `index` as UTF-8: returns its length, and writes it only when it fits in `cap`."""
    argv = _runtime(ctx).argv
    if index >= len(argv):
        return -1
    raw = argv[index].encode()
    if len(raw) <= cap:
        out[: len(raw)] = np.frombuffer(raw, np.uint8)
    return len(raw)


Dir = tuple[str, str] | tuple[str, str, bool]


class Guest:
    """One instance of a guest module in its own store.

    `argv[0]` is the program name the guest sees. `stdout`/`stderr` are file paths to write the guest's
    output to, file-like objects (binary or text: io.BytesIO, io.StringIO, an open file), or functions
    called with each write's bytes (default: this process's); what a call writes has reached them when the
    call returns. `stdin` is "null"
    (the default: reads see end of file), "inherit" (this process's stdin; True means the same) or a
    file path. `dirs` maps host directories to
    guest paths, as (host, guest) or (host, guest, read_only); the guest sees no file system beyond
    them. A memory the guest imports is created by the host, as `memory` says (default: the guest's own
    declared limits, with its index type).

    `limits` bounds the guest (see `bridge.Limits`: time, fuel, memories, tables, instances);
    `max_memory`, `timeout` and `fuel`, when given, override the same fields of `limits`. The time limit
    applies to each top-level `call` (and to instantiation); the fuel budget to the guest's whole life.
    `trace` (a `bridge.trace.Tracer`) records each host call as a span.

    Raises ModuleError for an invalid module, LinkError when its imports cannot be satisfied, and
    ValueError for a limit out of range. Use it as a context manager, or call `close()`, to free its
    store at once; nothing else keeps a closed guest alive.

    >>> guest = Guest(b'''(module
    ...   (memory (export "memory") 1)
    ...   (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
    ...   (func (export "load") (param i32) (result i32) (i32.load (local.get 0))))''')
    >>> guest.exports(), guest.signature("add")
    (['memory', 'add', 'load'], (['i32', 'i32'], ['i32']))
    >>> guest.call("add", 2, 3)
    5
    >>> guest.memory.write(16, (1234).to_bytes(4, "little"))  # the host writes, the guest reads
    >>> guest.call("load", 16)
    1234
    >>> guest.call("Add", 2, 3)
    Traceback (most recent call last):
    bridge.errors.LinkError: <bytes>: no exported function `Add`; nearest: add
    >>> guest.close()
    >>> guest.closed
    True
    """

    def __init__(
        self,
        module: GuestModule | str | os.PathLike[str] | bytes | bytearray,
        *,
        hosts: Sequence[HostFunctions] = (),
        argv: Sequence[str] = ("guest",),
        env: Mapping[str, str] | None = None,
        dirs: Sequence[Dir] = (),
        stdout: str | os.PathLike[str] | Sink | IO[Any] | None = None,
        stderr: str | os.PathLike[str] | Sink | IO[Any] | None = None,
        stdin: bool | str = "null",
        memory: HostMemory | None = None,
        limits: Limits | None = None,
        max_memory: int | None = None,
        timeout: float | None = None,
        fuel: int | None = None,
        trace: Tracer | None = None,
    ) -> None:
        self.tracer = trace  # each host call becomes a span in it (bridge.trace)
        overrides: dict[str, Any] = {"max_memory": max_memory, "timeout": timeout, "fuel": fuel}
        self.limits = dataclasses.replace(
            limits or Limits(), **{k: v for k, v in overrides.items() if v is not None}
        )
        self.module = module if isinstance(module, GuestModule) else load_module(module)
        self.argv = list(argv)
        self._closed = False
        self._files: list[int] = []
        self._pipe_ends: list[int] = []
        self._drains: list[_Drain] = []
        self._contexts: dict[int, Context] = {}
        self._memories: dict[int, GuestMemory] = {}
        self._host_memories: dict[int, _seam.MemoryAccess] = {}
        self._instance: _seam.Instance | None = None
        try:
            self._set_up(hosts, env or {}, dirs, stdout, stderr, stdin, memory)
        except BaseException:
            self.close()
            raise

    @property
    def max_memory(self) -> int:
        return self.limits.max_memory

    def _set_up(
        self,
        hosts: Sequence[HostFunctions],
        env: Mapping[str, str],
        dirs: Sequence[Dir],
        stdout: str | os.PathLike[str] | Sink | IO[Any] | None,
        stderr: str | os.PathLike[str] | Sink | IO[Any] | None,
        stdin: bool | str,
        memory: HostMemory | None,
    ) -> None:
        if dirs and self.module.is64:
            raise LinkError(
                f"{self.module.origin}: a wasm64 guest has no file system (WASI preview 1, which gives "
                "one, is 32-bit only), so it cannot be given directories (--dir); build it for wasm32 "
                "to use files"
            )
        registries = [system, *hosts]
        providers = self._providers(registries)
        self._check_imports(providers)
        runtime = _Runtime(
            self.argv, stdin="inherit" if stdin is True else "null" if stdin is False else str(stdin)
        )
        sinks: dict[int, str | None] = {}
        for fd, target in ((1, stdout), (2, stderr)):
            if not callable(target) and hasattr(target, "write"):  # file-like: io.BytesIO, io.StringIO...
                target = _file_writer(target)
            if callable(target):
                # WASI writes into a pipe that a thread of ours drains into `target`: wasmtime never calls
                # Python from its own threads (which cannot take the GIL once the interpreter exits).
                runtime.writers[fd] = target
                sinks[fd] = self._pipe_to(target)
            elif target is not None:
                # WASI writes through its own handle; bridge.write appends through ours.
                opened = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                self._files.append(opened)
                runtime.writers[fd] = _fd_writer(opened)
                sinks[fd] = os.fspath(target)
            else:
                sinks[fd] = None
        lim = self.limits
        wasi = _seam.WasiSpec(
            argv=self.argv,
            env=list(env.items()),
            dirs=[(d[0], d[1], bool(d[2]) if len(d) > 2 else False) for d in dirs],
            stdout=sinks[1],
            stderr=sinks[2],
            stdin="inherit" if stdin is True else "null" if stdin is False else str(stdin),
        )
        store_limits = _seam.StoreLimits(
            memory_size=lim.max_memory,
            table_elements=lim.table_elements,
            instances=lim.max_instances,
            tables=lim.max_tables,
            memories=lim.max_memories,
            timeout=lim.timeout,
            fuel=lim.fuel,
        )
        self._instance = instance = _seam.Instance(self.module.compiled, store_limits, wasi)
        for write_end in self._pipe_ends:
            os.close(write_end)  # wasmtime opened its own; the pipe ends when the store does
        self._pipe_ends.clear()
        # One Context per registry: its state and handles are private to this instance.
        for r in registries:
            state = runtime if r is system else (r.state_factory() if r.state_factory else None)
            self._contexts[id(r)] = Context(self, state)
        for imp in self.module.imports:
            hf = providers.get((imp.module, imp.name))
            if hf is None or imp.kind != "func":
                continue
            ctx = self._contexts[id(self._owner[hf.qualname])]
            params, results = hf.wasm_signature(self._pointer64)
            # Memories exist only once the instance does, so the call path is bound on first use.
            instance.define_func(hf.module, hf.name, params, results, _binder(hf, ctx), hf.name)
        for info in self.module.memories:
            if info.imported_as is not None:
                low, high, is64 = (memory or HostMemory()).plan(info, self.module.origin)
                module_name, name = info.imported_as
                self._host_memories[info.index] = instance.define_memory(module_name, name, low, high, is64)
        instance.instantiate()

    def _pipe_to(self, sink: Sink) -> str:
        """A path WASI can open for writing whose bytes reach `sink`, from a draining thread."""
        drain = _Drain(sink)
        self._pipe_ends.append(drain.write_end)
        self._drains.append(drain)
        return f"/dev/fd/{drain.write_end}"

    def _providers(self, registries: Sequence[HostFunctions]) -> dict[tuple[str, str], HostFunction]:
        providers: dict[tuple[str, str], HostFunction] = {}
        self._owner: dict[str, HostFunctions] = {}
        for registry in registries:
            for hf in registry:
                # A later registry overrides an earlier one, so users can replace a built-in.
                providers[(hf.module, hf.name)] = hf
                self._owner[hf.qualname] = registry
        return providers

    def _pointer64(self, ref: MemoryRef) -> bool:
        """Whether pointers into memory `ref` are 64-bit; raises LinkError (to be listed among the link
        problems, so without the module's name) when the guest has no such memory."""
        info = _find_memory(self.module.memories, ref)
        if info is None:
            raise LinkError(f"the guest has no memory {_ref_text(ref)}")
        return info.is64

    def _check_imports(self, providers: dict[tuple[str, str], HostFunction]) -> None:
        problems = []
        for imp in self.module.imports:
            wanted = imp.describe()
            if imp.module == WASI_MODULE:
                if self.module.is64:
                    problems.append(
                        f"guest imports `{wanted}`, but WASI preview 1 is 32-bit only; build wasm64 guests "
                        "with `bridge build --target wasm64`, which uses bridge's own runtime"
                    )
                continue
            if imp.kind == "memory":
                continue  # the host creates it (HostMemory)
            hf = providers.get((imp.module, imp.name))
            if hf is None:
                names = [f"{m}.{n}" for (m, n) in providers]
                near = difflib.get_close_matches(f"{imp.module}.{imp.name}", names, n=3, cutoff=0.6)
                hint = f"; nearest: {', '.join(near)}" if near else ""
                problems.append(
                    f"guest imports `{wanted}` and no host function has that name{hint} (host functions "
                    "come from a host file: `--host FILE.py` on the command line, hosts=[...] in Python)"
                )
                continue
            if imp.kind != "func":
                problems.append(f"guest imports `{wanted}`, but the host's `{hf.qualname}` is a function")
                continue
            try:
                params, results = hf.wasm_signature(self._pointer64)
            except LinkError as exc:
                problems.append(f"host function `{hf.qualname}`: {exc}")
                continue
            if params != list(imp.params) or results != list(imp.results):
                from .cheader import c_prototype

                problems.append(
                    f"guest imports `{wanted}`, but the host declares `{hf.describe(self._pointer64)}`, "
                    f"which C declares as `{c_prototype(hf, 'IMPORT')}` (`bridge header --host FILE.py` "
                    "writes the header)"
                )
        if problems:
            raise LinkError(f"{self.module.origin}: cannot link:\n" + "\n".join(f"  - {p}" for p in problems))

    @property
    def instance(self) -> _seam.Instance:
        if self._instance is None or self._closed:
            raise LinkError(f"{self.module.origin}: the guest is closed")
        return self._instance

    # --- memories ------------------------------------------------------------------------------------

    def memory_for(self, ref: MemoryRef = None) -> GuestMemory:
        """A guest memory by export/import name or index; None is the default memory.

        Raises LinkError when there is no such memory, or the host cannot reach it (defined but
        neither exported nor imported).
        """
        info = _find_memory(self.module.memories, ref)
        if info is None:
            raise LinkError(f"{self.module.origin}: the guest has no memory {_ref_text(ref)}")
        mem = self._memories.get(info.index)
        if mem is None:
            access = self._host_memories.get(info.index)
            if access is None and info.exports:
                access = self.instance.memory_export(info.exports[0])
            if access is None:
                origin = self.module.origin
                raise LinkError(f"{origin}: memory {info.name} is not exported, so the host cannot reach it")
            mem = self._memories[info.index] = GuestMemory(access, info.name, info.index)
        return mem

    @property
    def memory(self) -> GuestMemory:
        """The default memory: the one exported as "memory", else memory 0."""
        return self.memory_for(None)

    def context(self, registry: HostFunctions) -> Context:
        """This instance's Context for `registry`: its state and handles. Raises KeyError if not linked."""
        return self._contexts[id(registry)]

    # --- running -------------------------------------------------------------------------------------

    def exports(self) -> list[str]:
        """Names of everything the instance exports."""
        return self.instance.export_names()

    def functions(self) -> list[str]:
        """Names of the functions the instance exports."""
        return self.instance.function_names()

    def signature(self, name: str) -> tuple[list[str], list[str]]:
        """(params, results) wasm types of exported function `name`. Raises LinkError when there is none."""
        sig = self.instance.func_signature(name)
        if sig is None:
            funcs = self.functions()
            near = difflib.get_close_matches(name, funcs, n=3, cutoff=0.5)
            hint = (
                f"; nearest: {', '.join(near)}"
                if near
                else f"; it exports: {', '.join(funcs) or 'no functions'}"
            )
            raise LinkError(f"{self.module.origin}: no exported function `{name}`{hint}")
        return sig

    def call(self, name: str, *args: Any) -> Any:
        """Calls an exported function, under the time limit.

        Raises LinkError when there is no such function or the guest is closed; GuestTrap (BoundsError,
        HostError, GuestTimeout, GuestInterrupted, OutOfFuel) when the guest traps; GuestExit when it
        exits.
        """
        instance = self.instance
        if not instance.has_function(name):
            self.signature(name)  # raises LinkError with the nearest names
        try:
            return instance.call(name, *args)
        finally:
            for drain in self._drains:
                drain.sync()  # what the call wrote has reached its stdout/stderr sink when it returns

    def run(self) -> int:
        r"""Runs the command's `_start` and returns its exit code.

        Here a WASI command writes "hi" to a captured stdout and exits with status 2:

        >>> import io
        >>> out = io.StringIO()
        >>> guest = Guest(rb'''(module
        ...   (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
        ...   (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
        ...   (memory (export "memory") 1)
        ...   (data (i32.const 0) "\08\00\00\00\03\00\00\00hi\n")  ;; one iovec {8, 3}, then its bytes
        ...   (func (export "_start")
        ...     (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
        ...     (call $proc_exit (i32.const 2))))''', stdout=out)
        >>> guest.run()
        2
        >>> out.getvalue()  # a call's output has reached `out` when the call returns
        'hi\n'
        >>> guest.close()
        """
        try:
            self.call("_start")
        except GuestExit as exit_:
            return exit_.code
        return 0

    def interrupt(self) -> None:
        """Stops this guest's running call at its next check (within ~20 ms): it raises GuestInterrupted.
        A no-op when no call is running.

        Safe to call from another thread.
        """
        if self._instance is not None:
            self._instance.interrupt()

    @property
    def fuel_left(self) -> int | None:
        """Fuel units left, when the guest runs with a fuel budget."""
        return self.instance.fuel_left()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Frees the instance: its store, memories, host-side state and handles. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for ctx in self._contexts.values():
            ctx.close()
        self._contexts.clear()
        for mem in self._memories.values():
            mem.release()
        self._memories.clear()
        self._host_memories.clear()
        if self._instance is not None:
            self._instance.close()
        for fd in [*self._files, *self._pipe_ends]:
            os.close(fd)
        self._files.clear()
        self._pipe_ends.clear()
        for drain in self._drains:
            drain.join()  # the store is gone, so its pipe ends are closed: every drain sees the end
        self._drains.clear()

    def __enter__(self) -> Guest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _file_writer(stream: Any) -> Sink:
    """A sink writing into a file-like object: bytes to a binary one, UTF-8 text to a text one (a character
    split across two writes is decoded whole)."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def write(data: bytes) -> None:
        if isinstance(stream, io.TextIOBase):
            stream.write(decoder.decode(data))
            return
        try:
            stream.write(data)
        except TypeError:  # a text stream that is not an io.TextIOBase
            stream.write(decoder.decode(data))

    return write


class _Drain:
    """A pipe the guest's WASI stdout or stderr writes into, and the thread that copies its bytes to `sink`
    (wasmtime never calls Python from its own threads). `sync()` returns once every byte written so far
    has reached the sink: a guest's writes are complete when its call returns, so after a call the bytes
    are in the pipe, and the thread empties it before it answers."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._read, self.write_end = os.pipe()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._read, False)
        # Closed by join(), or when the drain is collected (a guest dropped without close()).
        self._close_wake = weakref.finalize(self, os.close, self._wake_write)
        self._synced = threading.Event()
        self._thread = threading.Thread(target=self._copy, name="bridge-output", daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        poller = select.poll()
        poller.register(self._read, select.POLLIN)
        poller.register(self._wake_read, select.POLLIN)
        try:
            while True:
                ready = {fd for fd, _ in poller.poll()}
                if self._read in ready and not self._empty():
                    return  # every write end is closed
                if self._wake_read in ready:
                    os.read(self._wake_read, 4096)
                    ended = not self._empty()
                    self._synced.set()
                    if ended:
                        return
        finally:
            self._synced.set()
            os.close(self._read)
            os.close(self._wake_read)

    def _empty(self) -> bool:
        """Copies what the pipe holds to the sink; False once the pipe has ended."""
        while True:
            try:
                data = os.read(self._read, 65536)
            except BlockingIOError:
                return True
            if not data:
                return False
            self._sink(data)

    def sync(self) -> None:
        if not self._thread.is_alive():
            return
        self._synced.clear()
        try:
            os.write(self._wake_write, b"s")
        except BrokenPipeError:  # the thread has just ended
            return
        while not self._synced.wait(0.1):
            if not self._thread.is_alive():
                return

    def join(self) -> None:
        self._thread.join()
        self._close_wake()


def _binder(hf: HostFunction, ctx: Context) -> Any:
    return lambda: hf.bind(ctx)


def _ref_text(ref: MemoryRef) -> str:
    return "(default)" if ref is None else (f"with index {ref}" if isinstance(ref, int) else f"named `{ref}`")
