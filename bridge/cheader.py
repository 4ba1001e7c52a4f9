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


# Words a C parameter or function may not be named: keywords (C89 to C23) and the types the header uses.
_C_WORDS = """auto break case char const continue default do double else enum extern float for goto if
    inline int long register restrict return short signed sizeof static struct switch typedef union
    unsigned void volatile while _Alignas _Alignof _Atomic _BitInt _Bool _Complex _Generic
    _Imaginary _Noreturn _Static_assert _Thread_local alignas alignof bool constexpr false nullptr
    static_assert thread_local true typeof typeof_unqual size_t ptrdiff_t wchar_t NULL offsetof"""
_C_RESERVED = frozenset(_C_WORDS.split() + [f"{s}int{b}_t" for s in ("", "u") for b in (8, 16, 32, 64)])


def _c_name(name: str) -> str:
    """`name` as a C identifier: other characters made underscores, a reserved word given a `_`."""
    ident = _ident(name) or "_"  # a wasm name may be empty
    return f"{ident}_" if ident in _C_RESERVED else ident


def _named_params(hf: HostFunction, spell: Callable[[str], str]) -> list[tuple[_Param, list[str]]]:
    """Each guest-visible parameter (not a context) with its names (text is pointer and length), spelt
    by `spell` and made unique within the function."""
    taken: set[str] = set()

    def unique(name: str) -> str:
        while spell(name) in taken:
            name += "_"
        taken.add(spell(name))
        return spell(name)

    params = [p for p in hf.params if p.role != "context"]
    # Declared names first, so a derived `x_len` gives way to a parameter really called that.
    firsts = [unique(p.name) for p in params]
    return [
        (p, [first, unique(f"{p.name}_len")] if p.role == "text" else [first])
        for p, first in zip(params, firsts, strict=True)
    ]


def _param(p: _Param, names: list[str]) -> str:
    name = names[0]
    if p.role == "scalar":
        assert p.scalar is not None
        return f"{_SCALARS[p.scalar]} {name}"
    if p.role == "text":
        return f"const char *{name}, size_t {names[1]}"
    if p.role == "pointer":
        ctype = p.pointer.ctype if isinstance(p.pointer, Pointer) else "void *"
        return f"{ctype}{'' if ctype.endswith('*') else ' '}{name}"
    assert p.array is not None and p.dtype is not None
    base = p.array.ctype or _DTYPES.get(p.dtype, "void")
    const = "" if p.array.writable else "const "
    return f"{const}{base} *{name}"


def _c_string(text: str) -> str:
    """`text` as a C string literal for an attribute, where only simple escapes are allowed (an
    "unevaluated string"): quotes, backslashes and the named control characters escaped, the rest as is
    (UTF-8 source)."""
    simple = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\v": "\\v", "\f": "\\f"}
    return '"' + "".join(simple.get(c, c) for c in text) + '"'


def c_prototype(hf: HostFunction, import_macro: str = "BRIDGE_IMPORT") -> str:
    """`MACRO(name) result name(params);` for one host function. An import name that is not a C
    identifier (or is a reserved word) keeps its import name in the attribute, spelt out, and gets a
    C name made of it.

    >>> from bridge import HostFunctions, u32
    >>> host = HostFunctions()
    >>> @host.function(name="scale-by.v2")
    ... def scale(x: u32, default: u32) -> u32:
    ...     return x * default
    >>> print(c_prototype(host["scale-by.v2"]))  # doctest: +NORMALIZE_WHITESPACE
    __attribute__((import_module("env"), import_name("scale-by.v2")))
    uint32_t scale_by_v2(uint32_t x, uint32_t default_);
    """
    params = [_param(p, names) for p, names in _named_params(hf, _c_name)]
    result = "void" if hf.result is None else _SCALARS[hf.result]
    name = _c_name(hf.name)
    if name == hf.name:
        head = f"{import_macro}({hf.name})"
    else:
        head = f"__attribute__((import_module({_c_string(hf.module)}), import_name({_c_string(hf.name)})))"
    return f"{head} {result} {name}({', '.join(params) or 'void'});"


def _documented(
    functions: Iterable[HostFunction], comment: str, declare: Callable[[HostFunction], str]
) -> str:
    """Each function's docstring's first line as a comment (`comment` holds `{}` for it), then its
    declaration."""
    out = []
    for hf in functions:
        doc = (hf.fn.__doc__ or "").strip().splitlines()
        if doc:
            text = doc[0].strip()
            if comment.startswith("/*"):  # a `*/` in the text would end the comment early
                text = text.replace("*/", "* /")
            out.append(comment.format(text))
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
        f"#define {macro}(name) __attribute__((import_module({_c_string(m)}), import_name(#name)))"
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


# Zig keywords and the primitive values and types: a name among them is written @"name".
_ZIG_WORDS = """addrspace align allowzero and anyframe anytype asm async await break callconv catch comptime
    const continue defer else enum errdefer error export extern fn for if inline linksection noalias
    noinline nosuspend opaque or orelse packed pub resume return struct suspend switch test
    threadlocal try union unreachable usingnamespace var volatile while anyerror anyopaque bool
    c_char c_int c_long c_longdouble c_longlong c_short c_uint c_ulong c_ulonglong c_ushort
    comptime_float comptime_int f128 f16 f32 f64 f80 false isize noreturn null true type undefined
    usize void"""
_ZIG_RESERVED = frozenset(_ZIG_WORDS.split())


def _zig_name(name: str) -> str:
    """`name` as a Zig identifier: as is when it is one, else `@"name"` (any string is a Zig name)."""
    plain = name.isascii() and name.replace("_", "a").isalnum() and not name[:1].isdigit()
    primitive = name[:1] in "iu" and name[1:].isdigit()  # i7, u24: integer types
    if plain and not primitive and name not in _ZIG_RESERVED and name != "_":
        return name
    return f"@{_zig_string(name)}"


def _zig_string(text: str) -> str:
    escaped = "".join(c if c.isprintable() and c not in '"\\' else f"\\u{{{ord(c):x}}}" for c in text)
    return f'"{escaped}"'


def _zig_param(p: _Param, names: list[str], structs: dict[str, str]) -> str:
    name = names[0]
    if p.role == "scalar":
        assert p.scalar is not None
        return f"{name}: {_ZIG_SCALARS[p.scalar]}"
    if p.role == "text":
        return f"{name}: [*]const u8, {names[1]}: usize"
    if p.role == "pointer":
        ctype = p.pointer.ctype if isinstance(p.pointer, Pointer) and p.pointer.ctype else "void *"
        const = ctype.startswith("const ")
        base = ctype.removeprefix("const ").rstrip("* ").strip()
        zig = structs.get(base) or _ZIG_CTYPES.get(base, "u8")
        return f"{name}: [*]{'const ' if const else ''}{zig}"
    assert p.array is not None and p.dtype is not None
    if p.array.ctype in structs:
        return f"{name}: *{'' if p.array.writable else 'const '}{structs[p.array.ctype]}"
    base = _ZIG_CTYPES.get(p.array.ctype or "", "") or _ZIG_DTYPES.get(p.dtype, "u8")
    return f"{name}: [*]{'' if p.array.writable else 'const '}{base}"


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
    params = [_zig_param(p, names, structs or {}) for p, names in _named_params(hf, _zig_name)]
    result = "void" if hf.result is None else _ZIG_SCALARS[hf.result]
    return f"pub extern {_zig_string(hf.module)} fn {_zig_name(hf.name)}({', '.join(params)}) {result};"


def render_zig(functions: Iterable[HostFunction], structs: dict[str, str] | None = None) -> str:
    """Each function's docstring as a `///` comment, then its extern declaration."""
    return _documented(functions, "/// {}", lambda hf: zig_extern(hf, structs))
