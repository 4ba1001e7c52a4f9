"""Modules: reading, validating and compiling them, and describing their imports and exports."""

from __future__ import annotations

import functools
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime

from ..errors import ModuleError
from .engine import FEATURE_SETTINGS, feature_config, make_engine

# A module file larger than this is refused before it is read (a guest is code, not data).
MAX_MODULE_BYTES = 512 << 20


@dataclass(frozen=True)
class ExternInfo:
    """An import or export: where it comes from, what kind it is, and a function's wasm signature."""

    module: str  # "" for exports
    name: str
    kind: str  # func, memory, table, global, tag
    params: tuple[str, ...] = ()
    results: tuple[str, ...] = ()
    # a table's element type and limits (its maximum None when unbounded); a global's type and mutability
    detail: str = ""

    def describe(self) -> str:
        where = f"{self.module}.{self.name}" if self.module else self.name
        if self.kind == "func":
            return f"{where} ({', '.join(self.params)}) -> {', '.join(self.results) or '()'}"
        return f"{where} ({self.kind}{', ' + self.detail if self.detail else ''})"


def _kind(ty: object) -> str:
    return {
        wasmtime.FuncType: "func",
        wasmtime.MemoryType: "memory",
        wasmtime.TableType: "table",
        wasmtime.GlobalType: "global",
    }.get(type(ty), type(ty).__name__.removesuffix("Type").lower())


def _extern(module: str, name: str, ty: object) -> ExternInfo:
    if isinstance(ty, wasmtime.FuncType):
        return ExternInfo(
            module, name, "func", tuple(str(t) for t in ty.params), tuple(str(t) for t in ty.results)
        )
    detail = ""
    if isinstance(ty, wasmtime.TableType):
        limits = ty.limits
        high = "no maximum" if limits.max is None else f"max {limits.max}"
        detail = f"{ty.element}, min {limits.min}, {high}"
    elif isinstance(ty, wasmtime.GlobalType):
        detail = f"{'mutable ' if ty.mutable else ''}{ty.content}"
    return ExternInfo(module, name, _kind(ty), detail=detail)


@dataclass
class CompiledModule:
    """A validated module: its binary, where it came from, and its compiled forms per engine."""

    wasm: bytes
    origin: str
    imports: list[ExternInfo]
    exports: list[ExternInfo]
    _compiled: dict[int, wasmtime.Module] = field(default_factory=dict, repr=False)

    def compiled(self, engine: wasmtime.Engine) -> wasmtime.Module:
        """The module compiled for `engine` (a fuel engine needs its own code), cached."""
        key = id(engine)
        module = self._compiled.get(key)
        if module is None:
            module = self._compiled[key] = _compile(engine, self.wasm, self.origin)
        return module


def explain(exc: BaseException) -> str:
    """wasmtime's whole message, cause included, on one line."""
    lines = [ln.strip() for ln in str(exc).splitlines()]
    parts = [ln.split(": ", 1)[1] if ln[:1].isdigit() and ": " in ln else ln for ln in lines]
    parts = [p for p in parts if p and p != "Caused by:"]
    return ": ".join(parts) if parts else type(exc).__name__


def _compile(engine: wasmtime.Engine, wasm: bytes, origin: str) -> wasmtime.Module:
    try:
        return wasmtime.Module(engine, wasm)
    except wasmtime.WasmtimeError as exc:
        raise ModuleError(f"{origin}: invalid WebAssembly module: {explain(exc)}") from None


def _wat_error(exc: BaseException) -> str:
    # wat's message is "<what>\n --> <anon>:LINE:COL\n | ...source excerpt...": keep what and where.
    text = str(exc)
    what = text.strip().splitlines()[0].strip() if text.strip() else type(exc).__name__
    where = re.search(r"-->\s*\S*?:(\d+):(\d+)", text)
    return f"{what} at line {where[1]}, column {where[2]}" if where else explain(exc)


def _looks_like_text(data: bytes) -> bool:
    """Whether `data` starts like a WebAssembly text module: "(" after whitespace and comments."""
    text = data[:4096].decode("utf-8", "replace")
    while True:
        text = text.lstrip()
        if text.startswith(";;"):
            text = text.partition("\n")[2]
        elif text.startswith("(;"):
            text = text.partition(";)")[2]
        else:
            return text.startswith("(")


def wat2wasm(text: str | bytes, origin: str = "<text>") -> bytes:
    """The binary of a WebAssembly text module. Raises ModuleError with wasmtime's reason and place."""
    try:
        source = text.decode("utf-8") if isinstance(text, bytes) else text
        return bytes(wasmtime.wat2wasm(source))
    except UnicodeDecodeError as exc:
        raise ModuleError(
            f"{origin}: not a valid WebAssembly text module: {exc.reason} at byte {exc.start}"
        ) from None
    except wasmtime.WasmtimeError as exc:
        raise ModuleError(f"{origin}: not a valid WebAssembly text module: {_wat_error(exc)}") from None


def to_binary(data: bytes, origin: str) -> bytes:
    """The binary module: `data` itself when it has the \\0asm magic, else its text format compiled."""
    if data[:4] == b"\0asm":
        return data
    if not _looks_like_text(data):
        raise ModuleError(f"{origin}: not a WebAssembly module (no \\0asm magic, and not WebAssembly text)")
    return wat2wasm(data, origin)


def read_module_file(path: str | os.PathLike[str], origin: str) -> bytes:
    """A module file's bytes. Refuses what is not a regular file (a device reads for ever) or too big."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise ModuleError(f"{origin}: not a regular file, so not a module bridge will read")
        if info.st_size > MAX_MODULE_BYTES:
            raise ModuleError(
                f"{origin}: {info.st_size} bytes is larger than a module may be "
                f"({MAX_MODULE_BYTES >> 20} MiB)"
            )
        with open(path, "rb") as f:
            data = f.read(MAX_MODULE_BYTES + 1)
    except OSError as exc:
        raise ModuleError(f"{origin}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_MODULE_BYTES:
        raise ModuleError(f"{origin}: larger than a module may be ({MAX_MODULE_BYTES >> 20} MiB)")
    return data


def compile_module(data: bytes, origin: str) -> CompiledModule:
    """Validates and compiles a module (binary or text) for bridge's engine. Raises ModuleError."""
    wasm = to_binary(data, origin)
    module = _compile(make_engine(), wasm, origin)
    compiled = CompiledModule(
        wasm,
        origin,
        [_extern(i.module, i.name or "", i.type) for i in module.imports],
        [_extern("", e.name, e.type) for e in module.exports],
    )
    compiled._compiled[id(make_engine())] = module
    return compiled


@functools.lru_cache(maxsize=16)
def _probe_engine(off: tuple[str, ...]) -> wasmtime.Engine:
    return wasmtime.Engine(feature_config(**{"wasm_threads": True, **dict.fromkeys(off, False)}))


def feature_validates(wasm: bytes, off: str | None = None) -> bool:
    """Whether `wasm` validates with every feature on (threads too), except the feature `off`."""
    return validation_error(wasm, off) is None


def validation_error(wasm: bytes, off: str | None = None) -> str | None:
    """Why `wasm` does not validate with every feature on except `off`, or None when it does."""
    settings = FEATURE_SETTINGS[off] if off is not None else ()
    return _invalid(_probe_engine(settings or ()), wasm)


def engine_validates(wasm: bytes) -> bool:
    """Whether bridge's own engine accepts `wasm`."""
    return _invalid(make_engine(), wasm) is None


def _invalid(engine: wasmtime.Engine, wasm: bytes) -> str | None:
    try:
        wasmtime.Module.validate(engine, wasm)
    except wasmtime.WasmtimeError as exc:
        return explain(exc)
    return None


def describe_module(wasm: bytes) -> tuple[list[ExternInfo], list[ExternInfo]]:
    """(imports, exports) of a module that validates with every feature on."""
    module = wasmtime.Module(_probe_engine(()), wasm)
    imports = [_extern(i.module, i.name or "", i.type) for i in module.imports]
    return imports, [_extern("", e.name, e.type) for e in module.exports]


def raw_hostcall_loop(wat: str | Path) -> Callable[[int], float]:
    """The benchmark's baseline: a plain wasmtime-py host function `(i32 x4) -> i32` called by the
    module's exported `loop(n)`. Returns a function timing `n` calls, in µs per call."""
    engine = make_engine()
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1 << 62)  # no time limit for the baseline
    module = wasmtime.Module(engine, str(wat))
    i32 = wasmtime.ValType.i32()
    func = wasmtime.Func(store, wasmtime.FuncType([i32] * 4, [i32]), lambda a, b, out, n: 0)
    loop = wasmtime.Instance(store, module, [func]).exports(store)["loop"]
    assert isinstance(loop, wasmtime.Func)

    def timed(calls: int) -> float:
        start = time.perf_counter()
        loop(store, calls)
        return (time.perf_counter() - start) / calls * 1e6

    return timed
