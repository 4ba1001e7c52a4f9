"""Loading, linking and running a guest module.

`load_module` compiles a `.wasm` (or `.wat`) file once; `Guest` is one instance of it in its own store,
linked against WASI preview 1, bridge's own runtime imports (module "bridge", used by freestanding
wasm64 guests for output, arguments and exit) and any number of `HostFunctions` registries.

Imports are checked before instantiation, so a missing or mistyped host function is reported with
what the guest wants, what the host has, and the nearest names, instead of wasmtime's first failure.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import wasmtime
from numpy.typing import NDArray

from . import _seam
from .errors import GuestExit, LinkError, ModuleError
from .hints import In, MemoryRef, Out, i32, u32, usize
from .host import Context, HostFunction, HostFunctions
from .limits import DEFAULT_MAX_MEMORY, MAX_MEMORY_LIMIT, HostMemory, format_bytes
from .memory import GuestMemory
from .wasmfile import MemoryInfo, read_memories

WASI_MODULE = "wasi_snapshot_preview1"


@dataclass
class GuestModule:
    """A compiled guest module and what bridge read from its binary."""

    module: wasmtime.Module
    wasm: bytes
    origin: str
    memories: list[MemoryInfo]

    @property
    def is64(self) -> bool:
        """True when its default memory is a 64-bit memory."""
        default = _default_memory(self.memories)
        return default is not None and default.is64


def load_module(
    source: str | os.PathLike[str] | bytes | bytearray,
    *,
    engine: wasmtime.Engine | None = None,
    origin: str | None = None,
) -> GuestModule:
    """Reads and compiles a guest module from a path or from bytes (binary or text format).

    `origin` names it in messages (default: the path). Raises ModuleError when the file is missing or
    is not a valid module.
    """
    engine = engine or _seam.make_engine()
    if isinstance(source, (bytes, bytearray)):
        wasm, origin = bytes(source), origin or "<bytes>"
    else:
        path = os.fspath(source)
        origin = origin or path
        try:
            wasm = Path(path).read_bytes()
        except OSError as exc:
            raise ModuleError(f"{origin}: cannot read: {exc.strerror}") from None
    module = _seam.compile_module(engine, wasm, origin)
    if wasm[:4] != b"\0asm":  # text format: the binary is wasmtime's own encoding of it
        wasm = bytes(wasmtime.wat2wasm(wasm.decode("utf-8")))
    return GuestModule(module, wasm, origin, read_memories(wasm, origin))


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


def _valtype_names(types: Sequence[wasmtime.ValType]) -> list[str]:
    return [str(t) for t in types]


def _describe_import(imp: wasmtime.ImportType) -> str:
    ty = imp.type
    if isinstance(ty, wasmtime.FuncType):
        results = ", ".join(_valtype_names(ty.results)) or "()"
        return f"{imp.module}.{imp.name} ({', '.join(_valtype_names(ty.params))}) -> {results}"
    kind = type(ty).__name__.removesuffix("Type").lower()
    return f"{imp.module}.{imp.name} ({kind})"


# --- bridge's own runtime imports -------------------------------------------------------------------

system = HostFunctions("bridge")


@system.function(name="write")
def _write(ctx: Context, fd: i32, data: Annotated[NDArray[np.uint8], In("length")], length: usize) -> i32:
    """Writes to the guest's stdout (1) or stderr (2); returns the bytes written, -1 for another fd."""
    out = ctx.guest.output_fd(fd)
    if out is None:
        return -1
    view = data.data
    while view:
        view = view[os.write(out, view) :]
    return len(data)


@system.function(name="exit")
def _exit(code: i32) -> None:
    raise GuestExit(code)


@system.function(name="args_count")
def _args_count(ctx: Context) -> i32:
    return len(ctx.guest.argv)


@system.function(name="arg_get")
def _arg_get(ctx: Context, index: u32, out: Annotated[NDArray[np.uint8], Out("cap")], cap: usize) -> i32:
    """Argument `index` as UTF-8: returns its length, and writes it only when it fits in `cap`."""
    if index >= len(ctx.guest.argv):
        return -1
    raw = ctx.guest.argv[index].encode()
    if len(raw) <= cap:
        out[: len(raw)] = np.frombuffer(raw, np.uint8)
    return len(raw)


class Guest:
    """One instance of a guest module in its own store.

    `argv[0]` is the program name the guest sees. `stdout`/`stderr` are file paths to write the guest's
    output to (default: this process's). `dirs` maps host directories to guest paths; the guest sees no
    file system beyond them. `max_memory` caps the bytes each of its memories may grow to (default
    DEFAULT_MAX_MEMORY, 16 GiB; at most MAX_MEMORY_LIMIT, 64 GiB): past it, memory.grow returns -1.
    A memory the guest imports is created by the host, as `memory` says (default: the guest's own
    declared limits, with its index type).

    Raises ModuleError for an invalid module and LinkError when its imports cannot be satisfied.
    """

    def __init__(
        self,
        module: GuestModule | str | os.PathLike[str] | bytes | bytearray,
        *,
        hosts: Sequence[HostFunctions] = (),
        argv: Sequence[str] = ("guest",),
        env: Mapping[str, str] | None = None,
        dirs: Sequence[tuple[str, str]] = (),
        stdout: str | os.PathLike[str] | None = None,
        stderr: str | os.PathLike[str] | None = None,
        stdin: bool = False,
        memory: HostMemory | None = None,
        max_memory: int = DEFAULT_MAX_MEMORY,
    ) -> None:
        if not 0 < max_memory <= MAX_MEMORY_LIMIT:
            raise ValueError(f"max_memory must be between 1 byte and {format_bytes(MAX_MEMORY_LIMIT)}")
        self.module = module if isinstance(module, GuestModule) else load_module(module)
        self.argv = list(argv)
        self._slot = _seam.TrapSlot()
        self._files: list[int] = []
        self._fds = {1: 1, 2: 2}
        self.store = wasmtime.Store(_seam.make_engine())
        self.max_memory = max_memory
        self.store.set_limits(memory_size=max_memory)
        self.store.set_wasi(self._wasi_config(env or {}, dirs, stdout, stderr, stdin))
        linker = wasmtime.Linker(self.store.engine)
        linker.define_wasi()

        registries = [system, *hosts]
        providers = self._providers(registries)
        self._check_imports(providers)
        # One Context per registry: its state and handles are private to this instance.
        self._contexts = contexts = {
            id(r): Context(self, r.state_factory() if r.state_factory else None) for r in registries
        }
        for imp in self.module.module.imports:
            hf = providers.get((imp.module, imp.name or ""))
            if hf is None:
                continue
            ctx = contexts[id(self._owner[hf.qualname])]
            functype = hf.functype(self._pointer64)
            # Memories exist only once the instance does, so the call path is bound on first use.
            func = _seam.new_func(self.store, functype, _binder(hf, ctx), self._slot, hf.name)
            linker.define(self.store, hf.module, hf.name, func)

        self._host_memories: dict[int, wasmtime.Memory] = {}
        for info in self.module.memories:
            if info.imported_as is not None:
                created = (memory or HostMemory()).create(self.store, info, self.module.origin)
                self._host_memories[info.index] = created
                linker.define(self.store, info.imported_as[0], info.imported_as[1], created)

        try:
            self.instance = linker.instantiate(self.store, self.module.module)
            failure: BaseException | None = None
        except (wasmtime.Trap, wasmtime.WasmtimeError) as err:
            # A trap in the start function is the guest's; anything else is a link failure.
            if isinstance(err, wasmtime.Trap) or self._slot.pending is not None:
                failure = _seam.convert(err, self._slot)
            else:
                failure = LinkError(f"{self.module.origin}: cannot instantiate: {_seam.first_line(err)}")
        if failure is not None:
            self.close()
            raise failure
        self._exports = self.instance.exports(self.store)
        self._memories: dict[int, GuestMemory] = {}

    # --- set-up --------------------------------------------------------------------------------------

    def _wasi_config(
        self,
        env: Mapping[str, str],
        dirs: Sequence[tuple[str, str]],
        stdout: str | os.PathLike[str] | None,
        stderr: str | os.PathLike[str] | None,
        stdin: bool,
    ) -> wasmtime.WasiConfig:
        wasi = wasmtime.WasiConfig()
        wasi.argv = self.argv
        wasi.env = list(env.items())
        for target, fd, path in (("stdout", 1, stdout), ("stderr", 2, stderr)):
            if path is None:
                getattr(wasi, f"inherit_{target}")()
            else:
                # WASI writes through its own handle; bridge.write appends through ours.
                setattr(wasi, f"{target}_file", os.fspath(path))
                self._fds[fd] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                self._files.append(self._fds[fd])
        if stdin:
            wasi.inherit_stdin()
        for host_dir, guest_dir in dirs:
            if not os.path.isdir(host_dir):
                raise LinkError(f"--dir {host_dir}: not a directory")
            wasi.preopen_dir(host_dir, guest_dir)
        return wasi

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
        info = _find_memory(self.module.memories, ref)
        if info is None:
            raise LinkError(f"{self.module.origin}: the guest has no memory {_ref_text(ref)}")
        return info.is64

    def _check_imports(self, providers: dict[tuple[str, str], HostFunction]) -> None:
        problems = []
        for imp in self.module.module.imports:
            wanted = _describe_import(imp)
            if imp.module == WASI_MODULE:
                if self.module.is64:
                    problems.append(
                        f"guest imports `{wanted}`, but WASI preview 1 is 32-bit only; build wasm64 guests "
                        "with `bridge build --target wasm64`, which uses bridge's own runtime"
                    )
                continue
            if isinstance(imp.type, wasmtime.MemoryType):
                continue  # the host creates it (HostMemory)
            hf = providers.get((imp.module, imp.name or ""))
            if hf is None:
                names = [f"{m}.{n}" for (m, n) in providers]
                near = difflib.get_close_matches(f"{imp.module}.{imp.name}", names, n=3, cutoff=0.6)
                hint = f"; nearest: {', '.join(near)}" if near else ""
                problems.append(f"guest imports `{wanted}` and no host function has that name{hint}")
                continue
            if not isinstance(imp.type, wasmtime.FuncType):
                problems.append(f"guest imports `{wanted}`, but the host's `{hf.qualname}` is a function")
                continue
            try:
                params, results = hf.wasm_signature(self._pointer64)
            except LinkError as exc:
                problems.append(f"host function `{hf.qualname}`: {exc}")
                continue
            if params != _valtype_names(imp.type.params) or results != _valtype_names(imp.type.results):
                problems.append(
                    f"guest imports `{wanted}`, but the host declares `{hf.describe(self._pointer64)}`"
                )
        if problems:
            raise LinkError(f"{self.module.origin}: cannot link:\n" + "\n".join(f"  - {p}" for p in problems))

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
            exported = self._exports[info.exports[0]] if info.exports else None
            raw = self._host_memories.get(info.index) or exported
            if not isinstance(raw, wasmtime.Memory):
                origin = self.module.origin
                raise LinkError(f"{origin}: memory {info.name} is not exported, so the host cannot reach it")
            mem = self._memories[info.index] = GuestMemory(self.store, raw, info.name, info.index)
        return mem

    @property
    def memory(self) -> GuestMemory:
        """The default memory: the one exported as "memory", else memory 0."""
        return self.memory_for(None)

    def context(self, registry: HostFunctions) -> Context:
        """This instance's Context for `registry`: its state and handles. Raises KeyError if not linked."""
        return self._contexts[id(registry)]

    def output_fd(self, fd: int) -> int | None:
        return self._fds.get(fd)

    # --- running -------------------------------------------------------------------------------------

    def exports(self) -> list[str]:
        """Names of everything the instance exports."""
        return list(self._exports)

    def functions(self) -> list[str]:
        """Names of the functions the instance exports."""
        return [n for n, e in self._exports.items() if isinstance(e, wasmtime.Func)]

    def func(self, name: str) -> wasmtime.Func:
        """An exported function. Raises LinkError when there is none of that name."""
        item = self._exports.get(name)
        if not isinstance(item, wasmtime.Func):
            funcs = self.functions()
            near = difflib.get_close_matches(name, funcs, n=3, cutoff=0.5)
            hint = (
                f"; nearest: {', '.join(near)}"
                if near
                else f"; it exports: {', '.join(funcs) or 'no functions'}"
            )
            raise LinkError(f"{self.module.origin}: no exported function `{name}`{hint}")
        return item

    def call(self, name: str, *args: Any) -> Any:
        """Calls an exported function.

        Raises GuestTrap (BoundsError, HostError) when the guest traps, GuestExit when it exits.
        """
        return _seam.call_guest(self.store, self.func(name), self._slot, *args)

    def run(self) -> int:
        """Runs the command's `_start` and returns its exit code."""
        try:
            self.call("_start")
        except GuestExit as exit_:
            return exit_.code
        return 0

    def close(self) -> None:
        for fd in self._files:
            os.close(fd)
        self._files.clear()

    def __enter__(self) -> Guest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _binder(hf: HostFunction, ctx: Context) -> Callable[[], Callable[[Any], None]]:
    return lambda: hf.bind(ctx)


def _ref_text(ref: MemoryRef) -> str:
    return "(default)" if ref is None else (f"with index {ref}" if isinstance(ref, int) else f"named `{ref}`")
