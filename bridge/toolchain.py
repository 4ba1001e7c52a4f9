"""Compiling C and Zig guests with the `ziglang` package: no system compiler or wasm SDK needed.

wasm32 guests link zig's WASI libc, so printf and malloc work. wasm64 guests are freestanding (WASI
preview 1 is 32-bit only) and link bridge's small runtime from `guest/libc64` instead, which prints and
exits through the "bridge" imports; the same C source builds for both.

Undefined functions become imports from module "env" (`--import-symbols`), so a typo in a host function
name is reported by the link check at run time, with the nearest names, rather than as a linker error.

A Zig guest is one root `.zig` file (its `pub fn main`), built by `zig build-exe` for wasm32-wasi or
wasm64-freestanding; it may `@import("realm")`, the generated realm bindings in guest/zig/realm.zig, and
`@import("bridge")`, guest/zig/bridge.zig: output, input, arguments and exit, the same on both targets.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from .errors import BuildError
from .wasmfile import strip_debug_sections

Target = Literal["wasm32", "wasm64"]
TARGETS: tuple[Target, ...] = ("wasm32", "wasm64")
# zig's default wasm stack is 16 MiB, which would make every guest's memory at least that big.
DEFAULT_STACK_SIZE = 1 << 20

GUEST_DIR = Path(__file__).resolve().parent / "guest"
INCLUDE_DIR = GUEST_DIR / "include"
LIBC64_DIR = GUEST_DIR / "libc64"
ZIG_DIR = GUEST_DIR / "zig"
# `-O` levels as zig build-exe's modes
_ZIG_MODES = {
    "0": "Debug",
    "1": "ReleaseSafe",
    "2": "ReleaseFast",
    "3": "ReleaseFast",
    "s": "ReleaseSmall",
    "z": "ReleaseSmall",
}


def _runtime_sources(target: Target) -> list[Path]:
    return sorted((LIBC64_DIR / "src").glob("*.c")) if target == "wasm64" else []


def compiler_command(
    sources: Sequence[Path],
    output: Path,
    *,
    target: Target = "wasm32",
    opt: str = "2",
    include_dirs: Sequence[str] = (),
    defines: Sequence[str] = (),
    stack_size: int = DEFAULT_STACK_SIZE,
) -> list[str]:
    """The zig cc command line that builds `sources` into `output`."""
    if target not in TARGETS:
        raise BuildError(f"unknown target {target!r}; choose wasm32 or wasm64")
    cmd = [sys.executable, "-m", "ziglang", "cc", f"-O{opt}", "-I", str(INCLUDE_DIR)]
    if target == "wasm32":
        cmd.append("--target=wasm32-wasi")
    else:
        cmd += ["--target=wasm64-freestanding", "-nostdlib", "-isystem", str(LIBC64_DIR / "include")]
    for d in include_dirs:
        cmd += ["-I", d]
    cmd += [f"-D{d}" for d in defines]
    cmd += [str(s) for s in sources] + [str(s) for s in _runtime_sources(target)]
    cmd += ["-Wl,--import-symbols", f"-Wl,-z,stack-size={stack_size}", "-o", str(output)]
    return cmd


def zig_command(
    source: Path,
    output: Path,
    *,
    target: Target = "wasm32",
    opt: str = "2",
    stack_size: int = DEFAULT_STACK_SIZE,
) -> list[str]:
    """The zig build-exe command line that builds the Zig guest `source` (its root file) into `output`.

    The guest may import "realm" (realm.zig), "bridge" (bridge.zig, over WASI or the runtime ABI in
    runtime.zig) and "realm_sample" (realm_sample.zig, the sampler of realm_sample.h). On wasm64, which
    has no WASI start code, start64.zig is the root and calls the guest's main, the guest being module
    "app"."""
    if target not in TARGETS:
        raise BuildError(f"unknown target {target!r}; choose wasm32 or wasm64")
    mode = _ZIG_MODES.get(opt)
    if mode is None:
        raise BuildError(f"optimisation level {opt!r} is not one of {', '.join(_ZIG_MODES)}")
    triple = "wasm32-wasi" if target == "wasm32" else "wasm64-freestanding"
    flags = ["-target", triple, "-O", mode]  # zig takes these per module, before each -M

    def module(name: str, path: Path, *deps: str) -> list[str]:
        return [*flags, *(a for d in deps for a in ("--dep", d)), f"-M{name}={path}"]

    guest = ("realm", "bridge", "realm_sample")
    modules = (
        module("root", source, *guest)
        if target == "wasm32"
        else module("root", ZIG_DIR / "start64.zig", "app", "bridge") + module("app", source, *guest)
    )
    return [
        sys.executable, "-m", "ziglang", "build-exe", *modules, *module("realm", ZIG_DIR / "realm.zig"),
        *module("bridge", ZIG_DIR / "bridge.zig", "runtime"), *module("runtime", ZIG_DIR / "runtime.zig"),
        *module("realm_sample", ZIG_DIR / "realm_sample.zig"),
        "--stack", str(stack_size), f"-femit-bin={output}",
    ]  # fmt: skip


def build(
    sources: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    target: Target = "wasm32",
    opt: str = "2",
    include_dirs: Sequence[str] = (),
    defines: Sequence[str] = (),
    stack_size: int = DEFAULT_STACK_SIZE,
) -> Path:
    r"""Compiles C `sources` (or one Zig root file) into the module `output`, with a `stack_size`-byte
    stack.

    Raises BuildError with the compiler's messages when compilation or linking fails, and for a Zig
    guest given with other sources or for wasm64.

    >>> import io
    >>> import tempfile
    >>> from pathlib import Path
    >>> from bridge import Guest
    >>> out = io.StringIO()
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     source = Path(tmp, "hello.c")
    ...     _ = source.write_text('#include <stdio.h>\nint main(void) { puts("hello from C"); return 3; }\n')
    ...     wasm = build([source], Path(tmp, "hello.wasm"))  # printf and friends: zig's WASI libc
    ...     with Guest(wasm, stdout=out) as guest:
    ...         code = guest.run()
    >>> wasm.name, code, out.getvalue()
    ('hello.wasm', 3, 'hello from C\n')
    """
    paths = [Path(s) for s in sources]
    if not paths:
        raise BuildError("no sources given")
    for p in paths:
        if not p.is_file():
            raise BuildError(f"{p}: no such source file")
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    if stack_size <= 0 or stack_size % 16:
        raise BuildError(f"stack size {stack_size} must be a positive multiple of 16 bytes")
    zig = [p for p in paths if p.suffix == ".zig"]
    if zig:
        if len(paths) != 1:
            raise BuildError(f"a Zig guest is one root .zig file, not {', '.join(map(str, paths))}")
        cmd = zig_command(zig[0], out, target=target, opt=opt, stack_size=stack_size)
    else:
        cmd = compiler_command(
            paths,
            out,
            target=target,
            opt=opt,
            include_dirs=include_dirs,
            defines=defines,
            stack_size=stack_size,
        )
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise BuildError(f"cannot start the zig compiler: {exc}") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise BuildError(f"compiling {', '.join(map(str, paths))} for {target} failed:\n{detail}")
    wasm = out.read_bytes()
    # The C start code's weak reference to main found none: wasi-libc's one stub, or both of the wasm64
    # runtime's (it takes main under either of two names, so one stub is there even with a main).
    missing = wasm.count(b"undefined_weak:main") >= (1 if target == "wasm32" else 2)
    if not zig and missing:
        out.unlink()
        raise BuildError(
            f"{', '.join(map(str, paths))}: no `main` function; a C guest needs `int main(void)` or "
            "`int main(int argc, char **argv)` (for a library of exports, build it as a reactor yourself)"
        )
    # Keep the name section (function names in wasm backtraces) but drop DWARF.
    out.write_bytes(strip_debug_sections(wasm, str(out)))
    return out


def cache_dir() -> Path:
    """Where built guests are cached: $BRIDGE_CACHE_DIR, else $XDG_CACHE_HOME/bridge, else ~/.cache/bridge."""
    if os.environ.get("BRIDGE_CACHE_DIR"):
        return Path(os.environ["BRIDGE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bridge"


def build_cached(
    sources: Sequence[str | os.PathLike[str]],
    *,
    target: Target = "wasm32",
    opt: str = "2",
    include_dirs: Sequence[str] = (),
    defines: Sequence[str] = (),
    stack_size: int = DEFAULT_STACK_SIZE,
    announce: Callable[[str], None] | None = None,
) -> Path:
    """Like `build`, into the cache, keyed by the content of everything that goes into the build.

    The key covers the sources, the headers (or Zig files) beside them, bridge's guest headers and
    runtime, the options and the zig version. `announce` is told, before a build that is not cached,
    what is being built (`bridge run` prints it: a first build takes a while). Raises BuildError as
    `build` does.
    """
    paths = [Path(s) for s in sources]
    h = hashlib.sha256()
    zig = importlib.metadata.version("ziglang")
    h.update(f"{target}|{opt}|{include_dirs}|{defines}|{stack_size}|zig {zig}".encode())
    inputs = set(paths)
    for p in paths:  # what a source may include or @import from beside it
        inputs.update(p.parent.glob("*.zig" if p.suffix == ".zig" else "*.h"))
    for d in (INCLUDE_DIR, LIBC64_DIR, ZIG_DIR):
        inputs.update(f for f in d.rglob("*") if f.is_file())
    for f in sorted(inputs):
        if not f.is_file():
            raise BuildError(f"{f}: no such source file")
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    out = cache_dir() / f"{paths[0].stem}-{target}-{h.hexdigest()[:20]}.wasm"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    if announce is not None:
        announce(f"building {', '.join(p.name for p in paths)} for {target} (cached for next time)...")
    # Build beside the cache entry, then rename, so a concurrent or interrupted build never leaves
    # a half-written module under the final name.
    fd, tmp = tempfile.mkstemp(suffix=".wasm", dir=out.parent)
    os.close(fd)
    try:
        build(
            paths,
            tmp,
            target=target,
            opt=opt,
            include_dirs=include_dirs,
            defines=defines,
            stack_size=stack_size,
        )
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
