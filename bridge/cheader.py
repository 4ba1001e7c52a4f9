"""C declarations generated from host function declarations, so guest headers cannot drift.

`c_prototype(hf)` renders one import as C; `render_header` a whole registry. Pointer-sized parameters
are `size_t` and pointers, which the guest's compiler makes 32- or 64-bit, matching the one Python
declaration on both targets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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


def render_prototypes(functions: Iterable[HostFunction], import_macro: str = "BRIDGE_IMPORT") -> str:
    """Each function's docstring as a comment, then its prototype."""
    out = []
    for hf in functions:
        doc = (hf.fn.__doc__ or "").strip().splitlines()
        if doc:
            out.append(f"/* {doc[0].strip()} */")
        out.append(c_prototype(hf, import_macro))
    return "\n".join(out)


def render_header(registry: HostFunctions | Sequence[HostFunctions], guard: str) -> str:
    """A self-contained header declaring every function of `registry` (or of each registry given) as
    an import: one `GUARD_IMPORT` macro per import module, then the prototypes.

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
    macros = {m: f"{guard}_IMPORT" if len(modules) == 1 else f"{guard}_{_ident(m)}_IMPORT" for m in modules}
    lines = [f"#ifndef {guard}", f"#define {guard}", "", "#include <stddef.h>", "#include <stdint.h>", ""]
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
