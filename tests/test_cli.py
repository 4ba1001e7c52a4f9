"""`python -m bridge` as a user runs it: in a fresh process, reading its output and exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import GUESTS, ROOT, run_cli

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
    assert ran.stderr == "to stderr\n"


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
    ],
)
def test_user_mistakes_get_one_clear_line(args: list[str], message: str) -> None:
    ran = run_cli(*args)
    assert ran.returncode == 1
    assert message in ran.stderr
    assert "Traceback" not in ran.stderr


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
