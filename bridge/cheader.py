"""C declarations generated from host function declarations, so guest headers cannot drift.

`c_prototype(hf)` renders one import as C; `render_header` a whole registry. Pointer-sized parameters
are `size_t` and pointers, which the guest's compiler makes 32- or 64-bit, matching the one Python
declaration on both targets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from .hints import Pointer
from .host import HostFunction, HostFunctions, _Param

_SCALARS = {
    "i32": "int32_t",
    "u32": "uint32_t",
    "i64": "int64_t",
    "u64": "uint64_t",
    "f32": "float",
    "f64": "double",
    "usize": "size_t",
}
_DTYPES = {
    np.dtype(np.int8): "int8_t",
    np.dtype(np.uint8): "uint8_t",
    np.dtype(np.int16): "int16_t",
    np.dtype(np.uint16): "uint16_t",
    np.dtype(np.int32): "int32_t",
    np.dtype(np.uint32): "uint32_t",
    np.dtype(np.int64): "int64_t",
    np.dtype(np.uint64): "uint64_t",
    np.dtype(np.float32): "float",
    np.dtype(np.float64): "double",
}


def _param(p: _Param) -> str:
    if p.role == "scalar":
        assert p.scalar is not None
        return f"{_SCALARS[p.scalar]} {p.name}"
    if p.role == "text":
        return f"const char *{p.name}, size_t {p.name}_len"
    if p.role == "pointer":
        ctype = p.pointer.ctype if isinstance(p.pointer, Pointer) else "void *"
        return f"{ctype}{'' if ctype.endswith('*') else ' '}{p.name}"
    assert p.array is not None and p.dtype is not None
    base = p.array.ctype or _DTYPES.get(p.dtype, "void")
    const = "" if p.array.writable else "const "
    return f"{const}{base} *{p.name}"


def c_prototype(hf: HostFunction, import_macro: str = "BRIDGE_IMPORT") -> str:
    """`MACRO(name) result name(params);` for one host function."""
    params = [_param(p) for p in hf.params if p.role != "context"]
    result = "void" if hf.result is None else _SCALARS[hf.result]
    return f"{import_macro}({hf.name}) {result} {hf.name}({', '.join(params) or 'void'});"


def _documented(
    functions: Iterable[HostFunction], comment: str, declare: Callable[[HostFunction], str]
) -> str:
    """Each function's docstring's first line as a comment (`comment` holds `{}` for it), then its
    declaration."""
    out = []
    for hf in functions:
        doc = (hf.fn.__doc__ or "").strip().splitlines()
        if doc:
            out.append(comment.format(doc[0].strip()))
        out.append(declare(hf))
    return "\n".join(out)


def render_prototypes(functions: Iterable[HostFunction], import_macro: str = "BRIDGE_IMPORT") -> str:
    """Each function's docstring as a comment, then its prototype."""
    return _documented(functions, "/* {} */", lambda hf: c_prototype(hf, import_macro))


def render_header(
    registry: HostFunctions | Sequence[HostFunctions],
    guard: str,
    *,
    macro: str | None = None,
    preamble: str = "",
    declarations: str = "",
) -> str:
    """A self-contained header declaring every function of `registry` (or of each registry given) as
    an import: one `GUARD_IMPORT` macro (or `macro`) per import module, then the prototypes. `preamble`
    (a comment) goes first; `declarations` (constants, structs) after the includes.

    >>> from bridge import HostFunctions, u32
    >>> host = HostFunctions()
    >>> @host.function
    ... def twice(x: u32) -> u32:
    ...     "x times two"
    ...     return 2 * x
    >>> print(render_header(host, "TWICE_H"))  # doctest: +NORMALIZE_WHITESPACE
    #ifndef TWICE_H
    #define TWICE_H
    <BLANKLINE>
    #include <stddef.h>
    #include <stdint.h>
    <BLANKLINE>
    #define TWICE_H_IMPORT(name) __attribute__((import_module("env"), import_name(#name)))
    <BLANKLINE>
    /* x times two */
    TWICE_H_IMPORT(twice) uint32_t twice(uint32_t x);
    <BLANKLINE>
    #endif /* TWICE_H */
    <BLANKLINE>
    """
    registries = [registry] if isinstance(registry, HostFunctions) else list(registry)
    modules = sorted({r.module for r in registries})
    base = macro or f"{guard}_IMPORT"
    macros = {m: base if len(modules) == 1 else f"{base}_{_ident(m).upper()}" for m in modules}
    lines = [preamble] if preamble else []
    lines += [f"#ifndef {guard}", f"#define {guard}", "", "#include <stddef.h>", "#include <stdint.h>", ""]
    if declarations:
        lines += [declarations, ""]
    lines += [
        f'#define {macro}(name) __attribute__((import_module("{m}"), import_name(#name)))'
        for m, macro in macros.items()
    ]
    for r in registries:
        lines += ["", render_prototypes(r, macros[r.module])]
    lines += ["", f"#endif /* {guard} */", ""]
    return "\n".join(lines)


def guard_for(path: str) -> str:
    """The include guard for a header file name: `x.h` -> `X_H`.

    >>> guard_for("my-host.h")
    'MY_HOST_H'
    """
    from pathlib import Path

    return _ident(Path(path).name).upper() or "BRIDGE_HOST_H"


def _ident(text: str) -> str:
    """text with every character that is not a letter, digit or underscore made an underscore."""
    ident = "".join(c if (c.isalnum() and c.isascii()) or c == "_" else "_" for c in text)
    return ident if not ident[:1].isdigit() else f"_{ident}"


# --- Zig: the same declarations as `pub extern` functions ------------------------------------------

_ZIG_SCALARS = {
    "i32": "i32",
    "u32": "u32",
    "i64": "i64",
    "u64": "u64",
    "f32": "f32",
    "f64": "f64",
    "usize": "usize",
}
_ZIG_DTYPES = {
    np.dtype(np.int8): "i8",
    np.dtype(np.uint8): "u8",
    np.dtype(np.int16): "i16",
    np.dtype(np.uint16): "u16",
    np.dtype(np.int32): "i32",
    np.dtype(np.uint32): "u32",
    np.dtype(np.int64): "i64",
    np.dtype(np.uint64): "u64",
    np.dtype(np.float32): "f32",
    np.dtype(np.float64): "f64",
}
_ZIG_CTYPES = {"char": "u8", "float": "f32", "double": "f64", "void": "anyopaque"} | {
    f"{s}int{b}_t": f"{(s and 'u') or 'i'}{b}" for s in ("", "u") for b in (8, 16, 32, 64)
}


def _zig_param(p: _Param, structs: dict[str, str]) -> str:
    if p.role == "scalar":
        assert p.scalar is not None
        return f"{p.name}: {_ZIG_SCALARS[p.scalar]}"
    if p.role == "text":
        return f"{p.name}: [*]const u8, {p.name}_len: usize"
    if p.role == "pointer":
        ctype = p.pointer.ctype if isinstance(p.pointer, Pointer) and p.pointer.ctype else "void *"
        const = ctype.startswith("const ")
        base = ctype.removeprefix("const ").rstrip("* ").strip()
        zig = structs.get(base) or _ZIG_CTYPES.get(base, "u8")
        return f"{p.name}: [*]{'const ' if const else ''}{zig}"
    assert p.array is not None and p.dtype is not None
    if p.array.ctype in structs:
        return f"{p.name}: *{'' if p.array.writable else 'const '}{structs[p.array.ctype]}"
    base = _ZIG_CTYPES.get(p.array.ctype or "", "") or _ZIG_DTYPES.get(p.dtype, "u8")
    return f"{p.name}: [*]{'' if p.array.writable else 'const '}{base}"


def zig_extern(hf: HostFunction, structs: dict[str, str] | None = None) -> str:
    """`pub extern "module" fn name(params) result;` for one host function; `structs` maps C struct
    names (array ctypes) to Zig types.

    >>> from bridge import HostFunctions, In, i64, usize
    >>> from typing import Annotated
    >>> from numpy.typing import NDArray
    >>> host = HostFunctions()
    >>> @host.function
    ... def sum_i32(xs: Annotated[NDArray[np.int32], In("n")], n: usize) -> i64:
    ...     return int(xs.sum())
    >>> zig_extern(host["sum_i32"])
    'pub extern "env" fn sum_i32(xs: [*]const i32, n: usize) i64;'
    """
    params = [_zig_param(p, structs or {}) for p in hf.params if p.role != "context"]
    result = "void" if hf.result is None else _ZIG_SCALARS[hf.result]
    return f'pub extern "{hf.module}" fn {hf.name}({", ".join(params)}) {result};'


def render_zig(functions: Iterable[HostFunction], structs: dict[str, str] | None = None) -> str:
    """Each function's docstring as a `///` comment, then its extern declaration."""
    return _documented(functions, "/// {}", lambda hf: zig_extern(hf, structs))
