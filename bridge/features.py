"""What the engine supports, and what a module needs (`python -m bridge features [GUEST] [--json]`).

Engine support is probed, not assumed: a tiny module per feature is validated against the engine every
guest runs on. A module "uses" a feature when it validates with every feature on but not with that one
off (bulk memory cannot be switched off, so its use is not reported). This host can run a module when
it compiles on bridge's engine and every import is satisfied by WASI, bridge's runtime, the realm
functions, the given host functions or a host-created memory.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import _seam
from ._seam.module import describe_module, engine_validates, to_binary, validation_error
from .guest import WASI_MODULE
from .host import HostFunctions
from .limits import format_bytes

# feature -> a module that uses it
_PROBES: dict[str, str] = {
    "memory64": "(module (memory i64 1))",
    "multi-memory": "(module (memory 1) (memory 1))",
    "simd": "(module (func (result v128) (v128.const i32x4 0 0 0 0)))",
    "relaxed-simd": (
        "(module (func (param v128 v128) (result v128) (i8x16.relaxed_swizzle (local.get 0) (local.get 1))))"
    ),
    "threads": "(module (memory 1 1 shared) (func (result i32) (i32.atomic.load (i32.const 0))))",
    "bulk-memory": "(module (memory 1) (func (memory.copy (i32.const 0) (i32.const 0) (i32.const 0))))",
}


def read_binary(path: Path, origin: str) -> bytes:
    """The module's binary, from a .wasm file or converted from text. Raises ModuleError."""
    return to_binary(_seam.read_module_file(path, origin), origin)


def engine_support() -> dict[str, bool]:
    """Which features bridge's engine accepts."""
    return {name: engine_validates(_seam.wat2wasm(wat)) for name, wat in _PROBES.items()}


def module_report(
    wasm: bytes, origin: str, provided: dict[str, set[str]], providers: str = "built-in host function"
) -> dict[str, Any]:
    """What the module declares and uses, and whether this host can run it.

    `provided` maps import modules to the function names the host offers there; `providers` says what
    they are, for the problem an import none of them provides makes.
    """
    from .wasmfile import read_memories

    invalid = validation_error(wasm)
    if invalid is not None:
        return {
            "module": origin,
            "valid": False,
            "can_run": False,
            "problems": [f"not a valid module: {invalid}"],
        }
    memories = read_memories(wasm, origin)
    uses = [
        name
        for name, settings in _seam.FEATURE_SETTINGS.items()
        if settings and not _seam.feature_validates(wasm, off=name)
    ]
    imports, exported = describe_module(wasm)
    exports = [f"{e.name} ({e.kind})" for e in exported]

    problems = []
    support = engine_support()
    problems += [f"uses {name}, which this engine does not enable" for name in uses if not support[name]]
    for imp in imports:
        if imp.kind == "memory":
            continue  # the host creates imported memories
        if imp.module == WASI_MODULE:
            if any(m.is64 for m in memories):
                problems.append(f"imports {imp.module}.{imp.name}, but WASI preview 1 is 32-bit only")
            continue
        if imp.name not in provided.get(imp.module, set()):
            problems.append(f"imports {imp.describe()}, which no {providers} provides")
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
                "page_size": m.page_size,
                "min_bytes": m.minimum * m.page_size,
                "max_bytes": None if m.maximum is None else m.maximum * m.page_size,
                "shared": m.shared,
                "imported": ".".join(m.imported_as) if m.imported_as else None,
                "exported": m.exports,
            }
            for m in memories
        ],
        "uses": uses,
        "imports": [imp.describe() for imp in imports],
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
        lines += [f"  {p}" for p in report["problems"]]
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


def inspect_report(wasm: bytes, origin: str, registries: Sequence[HostFunctions]) -> dict[str, Any]:
    """`bridge inspect`: module_report's memories, features and verdict, and for each import the host
    function that satisfies it with its C prototype, or the nearest names and how to give a host file;
    exports and tables with their signatures and limits."""
    from .cheader import c_prototype
    from .errors import LinkError
    from .wasmfile import read_memories

    providers = {(hf.module, hf.name): hf for registry in registries for hf in registry}
    provided = {m: {n for (mm, n) in providers if mm == m} for (m, _) in providers}
    report = module_report(wasm, origin, provided, "host function (built-in or from --host)")
    if not report["valid"]:
        return report
    memories = read_memories(wasm, origin)
    is64 = any(m.is64 for m in memories[:1])
    imports, exports = describe_module(wasm)
    names = [f"{m}.{n}" for (m, n) in providers]
    entries = []
    for imp in imports:
        entry: dict[str, Any] = {
            "import": f"{imp.module}.{imp.name}",
            "kind": imp.kind,
            "wasm": imp.describe(),
        }
        hf = providers.get((imp.module, imp.name))
        if imp.kind == "memory":
            entry["status"] = "created by the host"
        elif imp.module == WASI_MODULE:
            entry["status"] = "WASI preview 1 (wasmtime)" if not is64 else "WASI preview 1 is 32-bit only"
        elif hf is None:
            near = difflib.get_close_matches(entry["import"], names, n=3, cutoff=0.6)
            entry["status"] = "missing"
            entry["nearest"] = near
            entry["hint"] = (
                "no host function has that name: a host file that defines it is given with "
                "--host FILE.py (a HostFunctions registry)"
            )
        else:
            entry["provided_by"] = hf.qualname
            try:
                params, results = hf.wasm_signature(lambda ref: is64)
            except LinkError as exc:
                entry["status"] = f"host function cannot link: {exc}"
            else:
                entry["host_wasm"] = hf.describe(lambda ref: is64)
                entry["c"] = c_prototype(hf, f"{hf.module.upper()}_IMPORT")
                same = (params, results) == (list(imp.params), list(imp.results))
                entry["status"] = "ok" if same else "signature differs from the host's"
        entries.append(entry)
    report["imports"] = entries
    report["exports"] = [{"name": e.name, "kind": e.kind, "wasm": e.describe()} for e in exports]
    report["tables"] = [e.describe() for e in [*imports, *exports] if e.kind == "table"]
    return report


def format_inspect(report: dict[str, Any]) -> str:
    lines = [f"module {report['module']}:"]
    if not report["valid"]:
        return "\n".join(lines + [f"  {p}" for p in report["problems"]])
    lines.append("  memories:")
    for m in report["memories"]:
        high = "no maximum" if m["max_bytes"] is None else f"max {format_bytes(m['max_bytes'])}"
        lines.append(
            f"    [{m['index']}] {m['index_type']} memory, min {format_bytes(m['min_bytes'])}, {high}"
            + (", shared" if m["shared"] else "")
            + (f", imported as {m['imported']}" if m["imported"] else "")
            + (f", exported as {', '.join(m['exported'])}" if m["exported"] else "")
        )
    if not report["memories"]:
        lines.append("    none")
    lines.append(f"  tables: {'; '.join(report['tables']) or 'none'}")
    lines.append(f"  uses: {', '.join(report['uses']) or 'no optional features'}")
    lines.append(f"  imports ({len(report['imports'])}):")
    for imp in report["imports"]:
        lines.append(f"    {imp['wasm']}")
        if "provided_by" in imp and "c" in imp:
            lines.append(f"      <- {imp['provided_by']}: {imp['c']}")
            if imp["status"] != "ok":
                lines.append(f"      {imp['status']}: the host declares {imp['host_wasm']}")
        elif imp["status"] == "missing":
            near = f"; nearest: {', '.join(imp['nearest'])}" if imp["nearest"] else ""
            lines.append(f"      missing{near}; {imp['hint']}")
        else:
            lines.append(f"      {imp['status']}")
    lines.append(f"  exports ({len(report['exports'])}):")
    lines += [f"    {e['wasm']}" for e in report["exports"]]
    lines.append(f"  this host can run it: {'yes' if report['can_run'] else 'no'}")
    lines += [f"    - {p}" for p in report["problems"]]
    return "\n".join(lines)
