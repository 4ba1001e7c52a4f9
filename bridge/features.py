"""What the engine supports, and what a module needs (`python -m bridge features [GUEST] [--json]`).

Engine support is probed, not assumed: a tiny module per feature is validated against the engine every
guest runs on. A module "uses" a feature when it validates with every feature on but not with that one
off (bulk memory cannot be switched off, so its use is not reported). This host can run a module when
it compiles on bridge's engine and every import is satisfied by WASI, bridge's runtime, the realm
functions, the given host functions or a host-created memory.
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import wasmtime

from . import _seam
from ._seam import first_line
from .errors import ModuleError
from .guest import WASI_MODULE, _describe_import
from .limits import PAGE, format_bytes


def _off(config: wasmtime.Config, *settings: str) -> None:
    # A feature others build on goes off together with them (relaxed SIMD needs SIMD).
    for name in settings:
        setattr(config, name, False)


# feature -> (probe module, how to switch it off in a Config, or None when it cannot be: wasmtime
# aborts the process on a config without bulk memory, which reference types and more depend on)
_PROBES: dict[str, tuple[str, Callable[[wasmtime.Config], None] | None]] = {
    "memory64": ("(module (memory i64 1))", lambda c: setattr(c, "wasm_memory64", False)),
    "multi-memory": ("(module (memory 1) (memory 1))", lambda c: setattr(c, "wasm_multi_memory", False)),
    "simd": (
        "(module (func (result v128) (v128.const i32x4 0 0 0 0)))",
        lambda c: _off(c, "wasm_relaxed_simd", "wasm_simd"),
    ),
    "relaxed-simd": (
        "(module (func (param v128 v128) (result v128) (i8x16.relaxed_swizzle (local.get 0) (local.get 1))))",
        lambda c: setattr(c, "wasm_relaxed_simd", False),
    ),
    "threads": (
        "(module (memory 1 1 shared) (func (result i32) (i32.atomic.load (i32.const 0))))",
        lambda c: setattr(c, "wasm_threads", False),
    ),
    "bulk-memory": (
        "(module (memory 1) (func (memory.copy (i32.const 0) (i32.const 0) (i32.const 0))))",
        None,
    ),
}


def _config(off: str | None = None) -> wasmtime.Config:
    """Every probed feature on, except `off`."""
    config = _seam.feature_config(wasm_threads=True)
    switch_off = _PROBES[off][1] if off is not None else None
    if switch_off is not None:
        switch_off(config)
    return config


def _valid(engine: wasmtime.Engine, wasm: bytes) -> bool:
    try:
        wasmtime.Module.validate(engine, wasm)
    except wasmtime.WasmtimeError:
        return False
    return True


def read_binary(path: Path, origin: str) -> bytes:
    """The module's binary, from a .wasm file or converted from text. Raises ModuleError."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModuleError(f"{origin}: cannot read: {exc.strerror}") from None
    if data[:4] == b"\0asm":
        return data
    try:
        return bytes(wasmtime.wat2wasm(data.decode("utf-8")))
    except (wasmtime.WasmtimeError, UnicodeDecodeError) as exc:
        raise ModuleError(f"{origin}: not a WebAssembly module: {first_line(exc)}") from None


def engine_support() -> dict[str, bool]:
    """Which features bridge's engine accepts."""
    engine = _seam.make_engine()
    return {name: _valid(engine, bytes(wasmtime.wat2wasm(wat))) for name, (wat, _) in _PROBES.items()}


def module_report(wasm: bytes, origin: str, provided: dict[str, set[str]]) -> dict[str, Any]:
    """What the module declares and uses, and whether this host can run it.

    `provided` maps import modules to the function names the host offers there.
    """
    from .wasmfile import read_memories

    memories = read_memories(wasm, origin)
    everything = wasmtime.Engine(_config())
    if not _valid(everything, wasm):
        return {"module": origin, "valid": False, "can_run": False, "problems": ["not a valid module"]}
    uses = [
        name
        for name, (_, off) in _PROBES.items()
        if off and not _valid(wasmtime.Engine(_config(off=name)), wasm)
    ]
    module = wasmtime.Module(everything, wasm)
    imports = [_describe_import(imp) for imp in module.imports]
    exports = [f"{e.name} ({type(e.type).__name__.removesuffix('Type').lower()})" for e in module.exports]

    problems = []
    support = engine_support()
    problems += [f"uses {name}, which this engine does not enable" for name in uses if not support[name]]
    for imp in module.imports:
        if isinstance(imp.type, wasmtime.MemoryType):
            continue  # the host creates imported memories
        if imp.module == WASI_MODULE:
            if any(m.is64 for m in memories):
                problems.append(f"imports {imp.module}.{imp.name}, but WASI preview 1 is 32-bit only")
            continue
        if (imp.name or "") not in provided.get(imp.module, set()):
            problems.append(f"imports {_describe_import(imp)}, which no built-in host function provides")
    return {
        "module": origin,
        "valid": True,
        "memories": [
            {
                "index": m.index,
                "name": m.name,
                "index_type": "i64" if m.is64 else "i32",
                "min_pages": m.minimum,
                "max_pages": m.maximum,
                "min_bytes": m.minimum * PAGE,
                "max_bytes": None if m.maximum is None else m.maximum * PAGE,
                "shared": m.shared,
                "imported": ".".join(m.imported_as) if m.imported_as else None,
                "exported": m.exports,
            }
            for m in memories
        ],
        "uses": uses,
        "imports": imports,
        "exports": exports,
        "can_run": not problems,
        "problems": problems,
    }


def format_report(support: dict[str, bool], report: dict[str, Any] | None) -> str:
    lines = [f"engine (wasmtime {importlib.metadata.version('wasmtime')}):"]
    lines += [f"  {name:<14} {'yes' if ok else 'no'}" for name, ok in support.items()]
    if report is None:
        return "\n".join(lines)
    lines.append(f"module {report['module']}:")
    if not report["valid"]:
        lines.append("  not a valid module")
        return "\n".join(lines)
    lines.append("  memories:")
    for m in report["memories"]:
        high = "no maximum" if m["max_bytes"] is None else f"max {format_bytes(m['max_bytes'])}"
        where = []
        if m["imported"]:
            where.append(f"imported as {m['imported']}")
        if m["exported"]:
            where.append(f"exported as {', '.join(m['exported'])}")
        lines.append(
            f"    [{m['index']}] {m['index_type']} memory, min {format_bytes(m['min_bytes'])}, {high}"
            + (", shared" if m["shared"] else "")
            + (f", {'; '.join(where)}" if where else ", internal")
        )
    if not report["memories"]:
        lines.append("    none")
    lines.append(f"  uses: {', '.join(report['uses']) or 'no optional features'}")
    lines.append(f"  imports ({len(report['imports'])}):")
    lines += [f"    {i}" for i in report["imports"]]
    lines.append(f"  exports ({len(report['exports'])}): {', '.join(report['exports'])}")
    verdict = "yes" if report["can_run"] else "no"
    lines.append(f"  this host can run it: {verdict}")
    lines += [f"    - {p}" for p in report["problems"]]
    return "\n".join(lines)


def to_json(support: dict[str, bool], report: dict[str, Any] | None) -> str:
    return json.dumps({"engine": support, "module": report}, indent=2)
