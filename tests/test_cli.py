"""`python -m bridge` as a user runs it: in a fresh process, reading its output and exit code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .conftest import GUESTS, ROOT, run_cli, run_cli_process

HELLO_OUTPUT = "sum of 1..10 = 55\nreversed: 10 9 8 7 6 5 4 3 2 1\n"


@pytest.mark.parametrize("target", ["wasm32", "wasm64"])
def test_hello_acceptance(tmp_path: Path, target: str) -> None:
    wasm = tmp_path / "hello.wasm"
    built = run_cli("build", "examples/hello/hello.c", "-o", str(wasm), "--target", target)
    assert built.returncode == 0, built.stderr
    ran = run_cli("run", str(wasm), "--host", "examples/hello/host.py")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == HELLO_OUTPUT


def test_run_an_example_folder_builds_it_and_loads_its_host() -> None:
    ran = run_cli("run", "examples/hello")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == HELLO_OUTPUT


@pytest.mark.parametrize("target", ["wasm32", "wasm64"])
def test_bad_pointer_exits_nonzero_with_a_clear_message(tmp_path: Path, target: str) -> None:
    wasm = tmp_path / "badptr.wasm"
    assert run_cli("build", str(GUESTS / "badptr.c"), "-o", str(wasm), "--target", target).returncode == 0
    ran = run_cli("run", str(wasm), "--host", str(GUESTS / "checksum_host.py"))
    assert ran.returncode != 0
    assert ran.stdout == "before\n"
    err = ran.stderr
    assert "checksum" in err and "0xfffffff0" in err and "length 64 bytes" in err
    assert "memory `memory` is " in err and "bytes" in err
    assert "Traceback" not in err
    assert "wasm backtrace" in err and "main" in err


@pytest.mark.parametrize("target", ["wasm32", "wasm64"])
def test_args_stderr_and_exit_code(target: str) -> None:
    ran = run_cli("run", str(GUESTS / "args.c"), "--target", target, "--", "one", "two words", "--three")
    assert ran.returncode == 3
    assert ran.stdout == "arg 1: one\narg 2: two words\narg 3: --three\n"
    # (a first run of the source also says it is building it)
    assert re.sub(r"^bridge: building .*\n", "", ran.stderr) == "to stderr\n"


def test_no_file_system_unless_granted(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.txt").write_text("secret\n")
    denied = run_cli("run", str(GUESTS / "files.c"), cwd=tmp_path)
    assert denied.returncode == 1
    assert denied.stdout == "greeting: (unset)\ncannot open data/in.txt\n"
    granted = run_cli(
        "run",
        str(GUESTS / "files.c"),
        "--dir",
        f"{tmp_path / 'data'}::data",
        "--env",
        "GREETING=hi",
        cwd=tmp_path,
    )
    assert granted.returncode == 0, granted.stderr
    assert granted.stdout == "greeting: hi\nread: secret\n"


def test_invoke_a_function(tmp_path: Path) -> None:
    wat = tmp_path / "add.wat"
    wat.write_text(
        '(module (func (export "add") (param i32 i64) (result i64) '
        "(i64.add (i64.extend_i32_s (local.get 0)) (local.get 1))))"
    )
    ran = run_cli("run", str(wat), "--invoke", "add", "--", "-2", "0x10")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "14\n"
    wrong = run_cli("run", str(wat), "--invoke", "add", "--", "1")
    assert wrong.returncode == 1 and "takes 2 argument(s) (i32, i64), got 1" in wrong.stderr
    missing = run_cli("run", str(wat), "--invoke", "ad")
    assert missing.returncode == 1 and "no exported function `ad`; nearest: add" in missing.stderr
    nostart = run_cli("run", str(wat))
    assert nostart.returncode == 1 and "has no _start" in nostart.stderr and "add" in nostart.stderr


def test_guest_trap_is_one_paragraph(tmp_path: Path) -> None:
    wat = tmp_path / "trap.wat"
    wat.write_text('(module (func $deep unreachable) (func $_start (export "_start") (call $deep)))')
    ran = run_cli("run", str(wat))
    assert ran.returncode == 1
    assert ran.stderr.startswith(
        "bridge: error: guest trapped (unreachable): wasm `unreachable` instruction executed"
    )
    assert "0: deep\n  1: _start" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_host_exception_is_reported_and_debug_shows_the_traceback() -> None:
    args = ("run", str(GUESTS / "probe.c"), "--host", str(GUESTS / "raises_host.py"))
    ran = run_cli(*args)
    assert ran.returncode == 1
    assert (
        "host function `checksum` raised ZeroDivisionError: integer division or modulo by zero" in ran.stderr
    )
    assert "Traceback" not in ran.stderr and "--debug" in ran.stderr
    debug = run_cli(*args, "--debug")
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "in divide" in debug.stderr


def test_link_error_names_the_missing_function(tmp_path: Path) -> None:
    ran = run_cli("run", str(GUESTS / "probe.c"), "--host", "examples/hello/host.py")
    assert ran.returncode == 1
    assert "guest imports `env.checksum (i32, i32) -> i64` and no host function has that name" in ran.stderr
    assert "Traceback" not in ran.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["run", "nowhere.wasm"], "nowhere.wasm: no such file or folder", id="missing-file"),
        pytest.param(["run", "README.md"], "README.md: not a WebAssembly module", id="not-wasm"),
        pytest.param(
            ["run", "examples/hello/hello.c", "--host", "no_such_module_xyz"],
            "no such file or module",
            id="missing-host",
        ),
        pytest.param(
            ["run", "examples/hello/hello.c", "--host", "README.md"],
            "cannot load it as Python",
            id="host-not-python",
        ),
        pytest.param(
            ["run", "examples/hello/hello.c", "--env", "NOEQUALS"], "expected NAME=VALUE", id="bad-env"
        ),
        pytest.param(
            ["run", "examples/hello/hello.c", "--dir", "/no/such/dir"], "not a directory", id="bad-dir"
        ),
        pytest.param(
            ["run", "examples/hello/hello.c", "--model", "m=nowhere.gguf"],
            "--model m=nowhere.gguf: no such file nowhere.gguf",
            id="model-missing",
        ),
        pytest.param(
            ["run", "examples/hello/hello.c", "--model", "m=examples"],
            "--model m=examples: examples is a folder, not a GGUF file",
            id="model-folder",
        ),
        pytest.param(
            ["run", "examples/hello/hello.c", "--trace", "no/such/dir/t.json"],
            "error: no/such/dir/t.json: No such file or directory",
            id="trace-unwritable",
        ),
    ],
)
def test_user_mistakes_get_one_clear_line(args: list[str], message: str) -> None:
    ran = run_cli(*args)
    assert ran.returncode == 1
    assert message in ran.stderr
    assert "Traceback" not in ran.stderr


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = (\n", "importing it failed: SyntaxError"),
        ("raise RuntimeError('no model here')\n", "importing it failed: RuntimeError: no model here"),
        ("import sys\nsys.exit(3)\n", "importing it called sys.exit(3)"),
        ("y = 1\n", "defines no HostFunctions registry"),
    ],
    ids=["syntax", "raises", "exits", "no-registry"],
)
def test_a_host_file_that_does_not_load_is_one_line(tmp_path: Path, source: str, message: str) -> None:
    host = tmp_path / "host.py"
    host.write_text(source)
    for command in (["run", "examples/hello/hello.c"], ["header"], ["inspect", "examples/hello/hello.c"]):
        ran = run_cli(*command, "--host", str(host))
        assert ran.returncode == 1, ran.stderr
        assert message in ran.stderr and "Traceback" not in ran.stderr


def test_malformed_module(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm\x01\0\0\0\x05\xff")
    ran = run_cli("run", str(bad))
    assert ran.returncode == 1
    assert "bad.wasm: invalid WebAssembly module" in ran.stderr and "Traceback" not in ran.stderr


def test_build_errors_show_the_compiler_message(tmp_path: Path) -> None:
    src = tmp_path / "broken.c"
    src.write_text("int main(void) { return }\n")
    ran = run_cli("build", str(src), "-o", str(tmp_path / "x.wasm"))
    assert ran.returncode == 1
    assert "broken.c" in ran.stderr and "error" in ran.stderr and "Traceback" not in ran.stderr


def test_bad_arguments_are_usage_errors() -> None:
    ran = run_cli("run")
    assert ran.returncode == 2 and "usage:" in ran.stderr
    ran = run_cli("build", "x.c", "-o", "x.wasm", "--target", "wasm16")
    assert ran.returncode == 2 and "invalid choice" in ran.stderr


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["build", "--help"], ["bench", "--help"]])
def test_help(args: list[str]) -> None:
    ran = run_cli(*args)
    assert ran.returncode == 0 and "usage: bridge" in ran.stdout


def test_hostcall_benchmark_prints_figures() -> None:
    ran = run_cli("bench", "hostcall", "--calls", "2000", "--runs", "3", "--json")
    assert ran.returncode == 0, ran.stderr
    import json

    data = json.loads(ran.stdout)
    assert data["runs"] == 3 and len(data["typed_us"]) == 3 and len(data["raw_us"]) == 3
    assert data["typed_median_us"] > 0 and data["raw_median_us"] > 0 and data["ratio"] > 0


def test_readme_and_ci_agree() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = next(line for line in ci.splitlines() if line.startswith("python3 -m venv"))
    assert test_command in readme


# --- the tool around the guests: version, inspect, header, guest arguments -------------------------


def test_version() -> None:
    import bridge
    from bridge.cli import main

    assert bridge.__version__ and bridge.__version__[0].isdigit()
    ran = run_cli_process("--version")  # `python -m bridge` itself
    assert ran.returncode == 0 and ran.stdout.strip() == f"bridge {bridge.__version__}"
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0


MISSPELT = """(module
  (import "env" "sum_i3" (func (param i32 i32) (result i64)))
  (import "env" "reverse_i32" (func (param i32 i32 i32)))
  (table (export "callbacks") 2 8 funcref)
  (memory (export "memory") 1 4)
  (func (export "_start")))
"""


def test_inspect_names_the_nearest_host_function_and_the_host_option(tmp_path: Path) -> None:
    guest = tmp_path / "misspelt.wat"
    guest.write_text(MISSPELT)
    alone = run_cli("inspect", str(guest))
    assert alone.returncode == 0, alone.stderr
    assert "env.sum_i3 (i32, i32) -> i64" in alone.stdout and "--host FILE.py" in alone.stdout
    assert "this host can run it: no" in alone.stdout
    hosted = run_cli("inspect", str(guest), "--host", "examples/hello/host.py")
    out = hosted.stdout
    assert "missing; nearest: env.sum_i32, env.reverse_i32; no host function has that name" in out
    # a satisfied import shows its host function and C prototype; tables and memories their limits
    assert "<- env.reverse_i32: ENV_IMPORT(reverse_i32) void reverse_i32(const int32_t *src" in out
    assert "callbacks (table, funcref, min 2, max 8)" in out
    assert "[0] i32 memory, min 64 KiB, max 256 KiB, exported as memory" in out
    as_json = run_cli("inspect", str(guest), "--host", "examples/hello/host.py", "--json")
    report = json.loads(as_json.stdout)
    first, second = report["imports"]
    assert first["status"] == "missing" and first["nearest"][0] == "env.sum_i32"
    assert second["status"] == "ok" and second["provided_by"] == "env.reverse_i32"
    assert {"name": "_start", "kind": "func", "wasm": "_start () -> ()"} in report["exports"]


def test_header_compiles_and_links_against_its_host(tmp_path: Path) -> None:
    header = tmp_path / "hello_host.h"
    written = run_cli("header", "--host", "examples/hello/host.py", "-o", str(header))
    assert written.returncode == 0, written.stderr
    source = tmp_path / "use.c"
    source.write_text(
        '#include <stdio.h>\n#include "hello_host.h"\n'
        "int main(void) {\n"
        "    int32_t xs[3] = {1, 2, 3}, ys[3];\n"
        "    reverse_i32(xs, ys, 3);\n"
        '    printf("%lld %d\\n", (long long)sum_i32(xs, 3), ys[0]);\n'
        "    return 0;\n}\n"
    )
    for target in ("wasm32", "wasm64"):
        wasm = tmp_path / f"use-{target}.wasm"
        built = run_cli("build", str(source), "-o", str(wasm), "--target", target)
        assert built.returncode == 0, built.stderr
        ran = run_cli("run", str(wasm), "--host", "examples/hello/host.py")
        assert (ran.returncode, ran.stdout) == (0, "6 3\n"), ran.stderr
    missing = run_cli("header", "--host", str(tmp_path / "nothing.py"))
    assert missing.returncode != 0 and "Traceback" not in missing.stderr


# Names C or Zig cannot spell as they are: an import name with `-` and `.`, keywords as function and
# parameter names, a parameter named like another's derived length, `*/` in a docstring, and a module
# name with quotes.
AWKWARD_HOST = """
from typing import Annotated
import numpy as np
from numpy.typing import NDArray
from bridge import HostFunctions, Out, Utf8, u32

host = HostFunctions()

@host.function(name="scale-by.v2 ñ")
def scale(default: u32, int_: u32) -> u32:
    \"\"\"multiplies */ as this comment must survive\"\"\"
    return default * int_

@host.function
def switch(s: Utf8, s_len: u32, register: Annotated[NDArray[np.uint8], Out("s_len")]) -> u32:
    register[:] = np.frombuffer(s.upper().encode()[: len(register)], np.uint8)
    return len(s)

elsewhere = HostFunctions(module='my "host"')

@elsewhere.function
def ping() -> u32:
    return 7
"""
AWKWARD_C = """#include <stdio.h>
#include "awkward.h"
int main(void) {
    uint8_t out[3];
    uint32_t n = switch_("hello", 5, 3, out);
    printf("%u %u %.3s %u\\n", scale_by_v2__(6, 7), n, (const char *)out, ping());
    return 0;
}
"""
AWKWARD_ZIG = """const bridge = @import("bridge");
const awkward = @import("awkward.zig");
pub fn main() void {
    var out: [3]u8 = undefined;
    const n = awkward.@"switch"("hello", 5, 3, &out);
    bridge.print(1, "{d} {d} {s} {d}\\n", .{ awkward.@"scale-by.v2 ñ"(6, 7), n, out[0..], awkward.ping() });
}
"""


def test_header_spells_names_c_and_zig_cannot_take_as_they_are(tmp_path: Path) -> None:
    host = tmp_path / "awkward_host.py"
    host.write_text(AWKWARD_HOST)
    for lang, header, source, text in (
        ("c", "awkward.h", "use.c", AWKWARD_C),
        ("zig", "awkward.zig", "use.zig", AWKWARD_ZIG),
    ):
        written = run_cli("header", "--host", str(host), "-o", str(tmp_path / header))
        assert written.returncode == 0, written.stderr
        comment = "/* multiplies * / as" if lang == "c" else "/// multiplies */ as"
        assert comment in (tmp_path / header).read_text()
        (tmp_path / source).write_text(text)
        for target in ("wasm32", "wasm64"):
            wasm = tmp_path / f"{lang}-{target}.wasm"
            built = run_cli("build", str(tmp_path / source), "-o", str(wasm), "--target", target)
            assert built.returncode == 0, built.stderr
            ran = run_cli("run", str(wasm), "--host", str(host))
            assert (ran.returncode, ran.stdout) == (0, "42 5 HEL 7\n"), (lang, target, ran.stderr)
    as_zig = run_cli("header", "--host", str(host), "--lang", "zig")
    assert as_zig.stdout == (tmp_path / "awkward.zig").read_text()


def test_guest_words_after_an_option_get_the_double_dash_hint() -> None:
    ran = run_cli("run", "examples/hello", "--stats", "extra", "words")
    assert ran.returncode == 2
    assert "put the guest's arguments after --: bridge run GUEST [OPTIONS] -- extra words" in ran.stderr


def test_link_error_hints_at_the_host_option_and_the_c_prototype(tmp_path: Path) -> None:
    guest = tmp_path / "wrong.wat"
    guest.write_text(
        '(module (import "env" "reverse_i32" (func (param i32 i32))) (memory (export "memory") 1)'
        ' (func (export "_start")))'
    )
    ran = run_cli("run", str(guest), "--host", "examples/hello/host.py")
    assert ran.returncode == 1
    assert "which C declares as `IMPORT(reverse_i32) void reverse_i32(const int32_t *src" in ran.stderr
    bare = run_cli("run", str(guest))
    assert "--host FILE.py" in bare.stderr


def test_the_wat_example_runs_against_the_hello_host() -> None:
    ran = run_cli("run", "examples/hello-wat/hello.wat", "--host", "examples/hello/host.py")
    assert (ran.returncode, ran.stdout) == (0, "sum of 1..10 = 55\n"), ran.stderr


def test_run_says_when_it_builds_a_guest(tmp_path: Path) -> None:
    env = {"BRIDGE_CACHE_DIR": str(tmp_path / "cache")}
    first = run_cli_process("run", "examples/hello", env=env)
    assert first.returncode == 0 and "bridge: building hello.c for wasm32" in first.stderr
    again = run_cli_process("run", "examples/hello", env=env)
    assert again.returncode == 0 and "building" not in again.stderr  # cached


def test_a_c_guest_without_main_is_a_build_error(tmp_path: Path) -> None:
    source = tmp_path / "nomain.c"
    source.write_text("int helper(int x) { return x + 1; }\n")
    for target in ("wasm32", "wasm64"):
        built = run_cli("build", str(source), "-o", str(tmp_path / "x.wasm"), "--target", target)
        assert built.returncode == 1 and "no `main` function" in built.stderr, built.stderr
        assert not (tmp_path / "x.wasm").exists()
