"""Text <-> token ids from GGUF tokenizer metadata, with exactly llama.cpp's ids.

GGUF's ``tokenizer.ggml.model`` names the vocabulary kind:

- ``gpt2``: byte-level BPE. The `tokenizers` library runs it: pre-tokenizer regexes as llama.cpp picks them
  by ``tokenizer.ggml.pre``, GPT-2's byte-to-unicode mapping, then the ranked merges.
- ``llama``: SentencePiece-style pieces with scores; llama.cpp's ``llm_tokenizer_spm`` ported below.

Around both sits what llama.cpp does in src/llama-vocab.cpp, named in the comments: special-token splitting
(``tokenizer_st_partition``), BOS/EOS, token attributes and the end-of-generation set (``llama_vocab::load``),
and the detokenizer (``token_to_piece``, ``llama_detokenize``).
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tokenizers import Regex, models, pre_tokenizers
from tokenizers import Tokenizer as _HFTokenizer

__all__ = ["Tokenizer", "TokenizerError"]

# ruff: noqa: RUF001 -- the regex classes and special-token texts hold look-alike characters on purpose


class TokenizerError(ValueError):
    """The metadata lacks something the tokenizer needs, or asks for a kind this module does not support.

    `Model.open` reports it as a ModelError naming the file.

    >>> from bridge.realm import Tokenizer, TokenizerError
    >>> Tokenizer.from_metadata({"tokenizer.ggml.model": "bert", "tokenizer.ggml.tokens": ["[CLS]"]})
    Traceback (most recent call last):
    ...
    bridge.realm.tokenizer.TokenizerError: unsupported tokenizer model 'bert' (supported: 'gpt2', 'llama')
    >>> try:
    ...     Tokenizer.from_metadata({"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": ["a", "a"]})
    ... except ValueError as exc:  # a TokenizerError is a ValueError
    ...     print(exc)
    duplicate token in vocabulary: 'a'
    """


# Token attributes (llama_token_attr), a bit set per token.
_UNKNOWN = 1 << 0
_UNUSED = 1 << 1
_NORMAL = 1 << 2
_CONTROL = 1 << 3
_USER_DEFINED = 1 << 4
_BYTE = 1 << 5
_LSTRIP = 1 << 7
_RSTRIP = 1 << 8

# GGUF tokenizer.ggml.token_type -> attribute; unknown types count as "undefined" (0), as in llama.cpp.
_TYPE_ATTR = {1: _NORMAL, 2: _UNKNOWN, 3: _CONTROL, 4: _USER_DEFINED, 5: _UNUSED, 6: _BYTE}

_ASCII_SPACE = " \t\n\v\f\r"  # C isspace(), which llama.cpp's lstrip/rstrip use
_SPM_SPACE = "\u2581"  # "▁", SentencePiece's visible space

# ---------------------------------------------------------------- pre-tokenizers (gpt2 vocabularies)

# llama.cpp's regexes (llm_tokenizer_bpe), applied one after another: each splits every piece the previous
# left, keeping matches and the text between them. The GPT-2 regex gets GPT-2's trailing `|\s+`, which
# llama.cpp drops from the string but implements in unicode_regex_split_custom_gpt2.
_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_CONTRACTIONS = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
_LLAMA3 = (
    _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2 = _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_SEED_CODER = (
    _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_BAILINGMOE = (
    r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"
)
# "Not lowercase" / "not uppercase" letters as llama.cpp spells them (ASCII case only).
_UPPERISH = r"((?=[\p{L}])([^a-z]))"
_LOWERISH = r"((?=[\p{L}])([^A-Z]))"
_TEKKEN = (
    rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPERISH}*{_LOWERISH}+|[^\r\n\p{{L}}\p{{N}}]?{_UPPERISH}+{_LOWERISH}*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_GPT4O = (
    rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPERISH}*{_LOWERISH}+{_CONTRACTIONS}?"
    rf"|[^\r\n\p{{L}}\p{{N}}]?{_UPPERISH}+{_LOWERISH}*{_CONTRACTIONS}?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_DEEPSEEK3 = (
    r"""[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"""
    r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_PORO = r" ?[^(\s|.,!?…。，、।۔،)]+"
# Regexes without \p{..} run in llama.cpp on text whose non-ASCII spaces became \v: no space char can
# match a literal range like ࠀ-一 (it holds U+2009, U+3000...), hence the &&[^\s].
_CJK = r"[一-龥ࠀ-一가-퟿&&[^\s]]+"
_DEEPSEEK_LLM = (
    "[\r\n]",
    # Cased letters; \u escapes for canonical singletons, which text tools tend to normalize away.
    "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u1f7dᾀ-ᾴᾶ-ᾼ\u1fbeῂ-ῄῆ-ῌῐ-\u1fd3ῖ-\u1fdbῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u2126ℨ\u212a-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
    r"\s?[!-/:-~！-／：-～‘-‟\x{3000}-。&&[^\s]]+",
    r"\s+\z",  # "\s+$" in llama.cpp, where $ is the end of the piece
    _CJK,
    r"\p{N}+",
)


@dataclass(frozen=True)
class _Pre:
    """What one tokenizer.ggml.pre value means to llama.cpp (llama_vocab::load and llm_tokenizer_bpe)."""

    regexes: tuple[str, ...]
    clean_spaces: bool = True  # clean_up_tokenization_spaces when detokenizing
    ignore_merges: bool = False  # a piece that is a whole token skips the merges
    add_bos: bool = False
    bos: bool = True  # False: no default BOS id (chatglm)


def _pre_table() -> dict[str, _Pre]:
    starcoder = (r"\p{N}", _GPT2)
    groups: list[tuple[str, _Pre]] = [
        ("default", _Pre((r"[\p{P}\$\+<=>\^~\|]+", _GPT2, r"\p{N}+", "[0-9][0-9][0-9]"))),
        (
            "gpt-2 phi-2 jina-es jina-de gigachat jina-v2-es jina-v2-de a.x-4.0 mellum modern-bert",
            _Pre((_GPT2,)),
        ),
        ("mpt olmo jais exaone4", _Pre((_GPT2,))),
        ("trillion granite-docling", _Pre((_GPT2,), clean_spaces=False)),
        (
            "llama3 llama-v3 llama-bpe falcon3 falcon-h1 pixtral midm-2.0 lfm2 jina-v5-nano",
            _Pre((_LLAMA3,), ignore_merges=True, add_bos=True),
        ),
        ("dbrx smaug-bpe", _Pre((_LLAMA3,))),
        ("glm4 chatglm-bpe", _Pre((_LLAMA3,), bos=False)),
        (
            "qwen2 deepseek-r1-qwen kormo f2llmv2 hunyuan solar-open grok-2",
            _Pre((_QWEN2,), clean_spaces=False),
        ),
        ("stablelm2 megrez", _Pre((_QWEN2,))),
        ("starcoder refact codeshell exaone minerva-7b mellum2", _Pre(starcoder)),
        ("smollm command-r", _Pre(starcoder, clean_spaces=False)),
        ("falcon", _Pre((r"[\p{P}\$\+<=>\^~\|`]+", _GPT2, "[0-9][0-9][0-9]"))),
        ("deepseek-llm", _Pre(_DEEPSEEK_LLM, clean_spaces=False)),
        (
            "deepseek-coder",
            _Pre(("[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", _CJK, r"\p{N}"), clean_spaces=False),
        ),
        (
            "deepseek-v3 hunyuan-dense joyai-llm hy_v4",
            _Pre((r"\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+", _DEEPSEEK3), clean_spaces=False),
        ),
        ("gpt-4o llama4 kanana2 talkie minimax-m2", _Pre((_GPT4O,), clean_spaces=False)),
        ("tekken", _Pre((_TEKKEN,), clean_spaces=False, ignore_merges=True, add_bos=True)),
        ("poro-chat", _Pre((_PORO,), clean_spaces=False)),
        ("bloom gpt3-finnish", _Pre((_PORO,))),
        ("viking", _Pre((_PORO, r"\p{N}"), clean_spaces=False)),
        ("seed-coder", _Pre((_SEED_CODER,), clean_spaces=False)),
        ("bailingmoe bailingmoe2 llada-moe", _Pre((_BAILINGMOE,), clean_spaces=False)),
    ]
    return {name: pre for names, pre in groups for name in names.split()}


_PRE_TYPES = _pre_table()

# ---------------------------------------------------------------- special tokens (llama_vocab::load)

# Tokens found by their text when the metadata does not name them; each found one becomes a control token.
_AUTO_SPECIAL: dict[str, tuple[str, ...]] = {
    "eot": (
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
        "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>",
    ),
    "eom": ("<|eom_id|>",),
    "fim_pre": (
        "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>",
        "<|code_prefix|>", "<|prefix|>",
    ),
    "fim_suf": (
        "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>",
        "<|code_suffix|>", "<|suffix|>",
    ),
    "fim_mid": (
        "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>",
        "<|code_middle|>", "<|middle|>",
    ),
    "fim_pad": ("<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"),
    "fim_rep": ("<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"),
    "fim_sep": ("<|file_sep|>",),
}  # fmt: skip
# Metadata keys for those ids; the deprecated prefix/suffix/middle keys come last and win, as in llama.cpp.
_SPECIAL_KEYS = [(kind, f"tokenizer.ggml.{kind}_token_id") for kind in _AUTO_SPECIAL] + [
    ("fim_pre", "tokenizer.ggml.prefix_token_id"),
    ("fim_suf", "tokenizer.ggml.suffix_token_id"),
    ("fim_mid", "tokenizer.ggml.middle_token_id"),
]
_EOG_TEXTS = frozenset(
    {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
        "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
        "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
        "<｜end▁of▁sentence｜>", "[e~[",
    }
)  # fmt: skip
_ALWAYS_RENDERED = ("<|channel|>", "<|message|>", "<|start|>", "<|constrain|>")  # gpt-oss: user-defined


def _get(meta: Mapping[str, Any], key: str, kind: type, default: Any = None) -> Any:
    value = meta.get(key, default)
    if value is not None and not isinstance(value, kind):
        raise TokenizerError(f"metadata {key} is {type(value).__name__}, expected {kind.__name__}")
    return value


def _get_list(
    meta: Mapping[str, Any], key: str, kind: type | tuple[type, ...], n: int | None = None
) -> list[Any] | None:
    value = meta.get(key)
    if value is None:
        return None
    items = list(value)
    if not all(isinstance(v, kind) for v in items):
        raise TokenizerError(f"metadata {key} has entries of the wrong type")
    if n is not None and len(items) < n:
        raise TokenizerError(f"metadata {key} has {len(items)} entries for {n} tokens")
    return items


def _get_id(meta: Mapping[str, Any], key: str, n_vocab: int, default: int | None) -> int | None:
    """An id from the metadata; absent or out of range keeps the default (llama.cpp only warns)."""
    default = default if default is not None and default < n_vocab else None
    value = _get(meta, key, int)
    return value if value is not None and 0 <= value < n_vocab else default


# ---------------------------------------------------------------- detokenizer helpers


def _byte_decoder() -> dict[str, int]:
    """GPT-2's bytes_to_unicode, reversed: the char standing for each byte in byte-level BPE tokens."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars = {b: chr(b) for b in printable}
    extra = (b for b in range(256) if b not in chars)
    chars.update({b: chr(256 + i) for i, b in enumerate(extra)})
    return {c: b for b, c in chars.items()}


_BYTE_DECODER = _byte_decoder()


def _bpe_piece(text: str) -> bytes:
    """A byte-level token's bytes (llama_decode_text), with llama.cpp's marker for chars outside the map."""
    out = bytearray()
    for ch in text:
        byte = _BYTE_DECODER.get(ch)
        if byte is not None:
            out.append(byte)
        else:
            out += b"[UNK_BYTE_0x" + ch.encode().hex().encode() + text.encode() + b"]"
    return bytes(out)


def _clean_spaces(text: bytes) -> bytes:
    """llama_detokenize's clean_up_tokenization_spaces: three in-place passes, quirks included."""
    t = bytearray(text)
    # " ?", " !", " .", " ," lose their space
    n, total = len(t), min(len(t), 1)
    for i in range(1, n):
        x = t[i]
        if t[i - 1] == 0x20 and x in b"?!.,":
            total -= 1
        t[total] = x
        total += 1
    # " ' " becomes "'" (the following space is zeroed in place, so it no longer counts as a space)
    n, total, i = total, min(total, 1), 1
    while i < n:
        x = t[i]
        if x == 0x27 and i + 1 < n and t[i - 1] == 0x20 and t[i + 1] == 0x20:
            total -= 1
            i += 1
            t[i] = 0
        t[total] = x
        total += 1
        i += 1
    # " 's", " 'm", " 're", " 've" lose their space (" 't", " 'd", " 'll" keep it)
    n, total = total, min(total, 1)
    for i in range(1, n):
        x = t[i]
        if t[i - 1] == 0x20 and x == 0x27 and i + 1 < n:
            x1 = t[i + 1]
            if x1 in b"sm" or (x1 not in b"td" and i + 2 < n and bytes(t[i + 1 : i + 3]) in (b"re", b"ve")):
                total -= 1
        t[total] = x
        total += 1
    return bytes(t[:total])


# _clean_spaces as three substitutions, one per pass (a test holds them equal on random bytes). Each pass
# decides a byte from at most `span` bytes starting there, so a stream can be cleaned piece by piece.
_CLEAN_PASSES = (
    (re.compile(rb" (?=[?!.,])"), b"", 2),  # " ?", " !", " .", " ," lose their space
    (re.compile(rb" ' "), b"'", 3),  # " ' " becomes "'", leftmost first, without overlaps
    (re.compile(rb" (?='(?:[sm]|re|ve))"), b"", 4),  # " 's", " 'm", " 're", " 've" lose their space
)


class _SpaceCleaner:
    """_clean_spaces over a stream: `feed` pieces in order, then `finish`; the outputs joined equal
    _clean_spaces of the inputs joined. It holds back at most a few bytes per pass."""

    def __init__(self) -> None:
        self._carry = [b""] * len(_CLEAN_PASSES)

    def feed(self, data: bytes) -> bytes:
        for k, (pattern, repl, span) in enumerate(_CLEAN_PASSES):
            buf = self._carry[k] + data
            # Every match attempt starting before `cut` sees all the bytes it can look at; hold the rest.
            cut = len(buf) - (span - 1)
            if cut <= 0:
                self._carry[k], data = buf, b""
                continue
            parts, pos = [], 0
            for match in pattern.finditer(buf):
                if match.start() >= cut:
                    break
                parts += [buf[pos : match.start()], repl]
                pos = match.end()
            cut = max(cut, pos)
            parts.append(buf[pos:cut])
            self._carry[k], data = buf[cut:], b"".join(parts)
        return data

    def finish(self) -> bytes:
        data = b""
        for k, (pattern, repl, _) in enumerate(_CLEAN_PASSES):
            data = pattern.sub(repl, self._carry[k] + data)
            self._carry[k] = b""
        return data


# ---------------------------------------------------------------- the tokenizer


class Tokenizer:
    """GGUF vocabulary -> llama.cpp-identical token ids, and ids -> bytes.

    Build with `from_metadata`. Special tokens (control, user-defined, unknown) written in the text become
    their ids when `parse_special` (user-defined ones always), as llama_tokenize does.

    >>> from bridge.realm import Model
    >>> from bridge.realm.store import packaged_model_path
    >>> tokenizer = Model.open(packaged_model_path()).tokenizer  # from_metadata of the GGUF's metadata
    >>> ids = tokenizer.encode("What is the capital of France?")
    >>> ids
    [1780, 314, 260, 3575, 282, 4649, 47]
    >>> [tokenizer.token_bytes(i) for i in ids]
    [b'What', b' is', b' the', b' capital', b' of', b' France', b'?']
    >>> tokenizer.decode(ids)  # bytes: a token may end inside a UTF-8 character
    b'What is the capital of France?'
    >>> tokenizer.encode("<|im_start|>user"), tokenizer.encode("<|im_start|>user", parse_special=False)
    ([1, 4093], [44, 108, 306, 79, 3738, 108, 46, 4093])
    >>> tokenizer.is_eog(tokenizer.eos_id), tokenizer.token_bytes(tokenizer.eos_id)
    (True, b'<|im_end|>')
    """

    n_vocab: int
    bos_id: int | None
    eos_id: int | None
    _lengths: NDArray[np.int64] | None = None  # each token's byte count, made on first use

    def __init__(
        self,
        *,
        kind: str,
        texts: list[str],
        attrs: list[int],
        scores: list[float],
        merges: list[tuple[str, str]],
        pre: _Pre | None,
        bos_id: int | None,
        eos_id: int | None,
        unk_id: int | None,
        add_bos: bool,
        add_eos: bool,
        add_space_prefix: bool,
        eog_ids: frozenset[int],
    ) -> None:
        self.n_vocab = len(texts)
        self.bos_id = bos_id
        self.eos_id = eos_id
        self._kind = kind
        self._texts = texts
        self._attrs = attrs
        self._scores = scores
        self._unk_id = unk_id
        self._add_bos = add_bos
        self._add_eos = add_eos
        self._add_space_prefix = add_space_prefix
        self._clean = pre.clean_spaces if pre is not None else False
        self._eog_ids = eog_ids
        self._ids = {t: i for i, t in enumerate(texts)}
        # tokenizer_st_partition's order: longest text first (ties by id, where llama.cpp's sort is unstable).
        specials = [i for i, a in enumerate(attrs) if a & (_CONTROL | _USER_DEFINED | _UNKNOWN)]
        self._specials = sorted(specials, key=lambda i: (-len(texts[i].encode()), i))
        self._pieces = [self._piece(i) for i in range(self.n_vocab)]
        if kind == "gpt2":
            assert pre is not None
            self._bpe = self._build_bpe(merges, pre)
        else:
            self._byte_ids = [self._byte_token(b) for b in range(256)]

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> Tokenizer:
        """The tokenizer GGUF metadata describes (keys "tokenizer.ggml.*", decoded values).

        Raises TokenizerError naming the missing or unsupported part.
        """
        kind = _get(meta, "tokenizer.ggml.model", str)
        if kind is None:
            raise TokenizerError("metadata has no tokenizer.ggml.model")
        if kind not in ("gpt2", "llama"):
            raise TokenizerError(f"unsupported tokenizer model {kind!r} (supported: 'gpt2', 'llama')")
        tokens = _get_list(meta, "tokenizer.ggml.tokens", str)
        if not tokens:
            raise TokenizerError("metadata has no tokenizer.ggml.tokens")
        n = len(tokens)
        texts = [t or f"[EMPTY_{i}]" for i, t in enumerate(tokens)]
        if len(set(texts)) != n:
            dup = next(t for i, t in enumerate(texts) if t in texts[:i])
            raise TokenizerError(f"duplicate token in vocabulary: {dup!r}")
        types = _get_list(meta, "tokenizer.ggml.token_type", int, n)
        attrs = [_TYPE_ATTR.get(t, 0) for t in types[:n]] if types is not None else [_NORMAL] * n
        raw_scores = _get_list(meta, "tokenizer.ggml.scores", (int, float), n)
        scores = [float(s) for s in raw_scores[:n]] if raw_scores is not None else [0.0] * n

        pre: _Pre | None = None
        merges: list[tuple[str, str]] = []
        if kind == "gpt2":
            pre_name = _get(meta, "tokenizer.ggml.pre", str, "") or "default"
            if pre_name not in _PRE_TYPES:
                raise TokenizerError(
                    f"unsupported pre-tokenizer type {pre_name!r} (tokenizer.ggml.pre); supported: "
                    + ", ".join(sorted(_PRE_TYPES))
                )
            pre = _PRE_TYPES[pre_name]
            merges = _parse_merges(_get_list(meta, "tokenizer.ggml.merges", str))
            bos, eos, unk = (11 if pre.bos else None), 11, None  # llama.cpp's BPE defaults
            add_bos, add_space_prefix = pre.add_bos, False
        else:
            bos, eos, unk = 1, 2, 0  # llama.cpp's SPM defaults
            add_bos, add_space_prefix = True, True

        bos_id = _get_id(meta, "tokenizer.ggml.bos_token_id", n, bos)
        eos_id = _get_id(meta, "tokenizer.ggml.eos_token_id", n, eos)
        unk_id = _get_id(meta, "tokenizer.ggml.unknown_token_id", n, unk)
        add_bos = _get(meta, "tokenizer.ggml.add_bos_token", bool, add_bos)
        add_eos = _get(meta, "tokenizer.ggml.add_eos_token", bool, False)
        add_space_prefix = _get(meta, "tokenizer.ggml.add_space_prefix", bool, add_space_prefix)
        for flag, token_id, what in ((add_bos, bos_id, "bos"), (add_eos, eos_id, "eos")):
            if flag and token_id is None:
                raise TokenizerError(
                    f"tokenizer.ggml.add_{what}_token is true, but no {what} token id is set"
                )

        eog_ids = _mark_specials(meta, texts, attrs, eos_id)
        return cls(
            kind=kind, texts=texts, attrs=attrs, scores=scores, merges=merges, pre=pre,
            bos_id=bos_id, eos_id=eos_id, unk_id=unk_id, add_bos=add_bos, add_eos=add_eos,
            add_space_prefix=add_space_prefix, eog_ids=eog_ids,
        )  # fmt: skip

    def _build_bpe(self, merges: list[tuple[str, str]], pre: _Pre) -> _HFTokenizer:
        # `tokenizers` wants every merge's parts and result in the vocabulary; llama.cpp merges the rest
        # into pieces it cannot emit, so dropping them changes nothing a well-formed vocabulary produces.
        ids = self._ids
        usable = [(a, b) for a, b in merges if a in ids and b in ids and a + b in ids]
        # A byte whose char is not in the vocabulary stays a symbol in llama.cpp, blocking merges across
        # it, and is dropped at the end. `tokenizers` would skip it and merge across: give it an id
        # (n_vocab) that merges with nothing, and drop that id after encoding.
        unk = "[bridge: not in vocabulary]"
        while unk in ids:
            unk += "_"
        vocab = {**ids, unk: self.n_vocab}
        try:
            model = models.BPE(vocab=vocab, merges=usable, unk_token=unk, ignore_merges=pre.ignore_merges)
            bpe = _HFTokenizer(model)
            splits = [pre_tokenizers.Split(Regex(r), behavior="isolated") for r in pre.regexes]
        except Exception as exc:  # `tokenizers` raises its own exception types
            raise TokenizerError(f"cannot build the BPE tokenizer: {exc}") from exc
        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        bpe.pre_tokenizer = pre_tokenizers.Sequence([*splits, byte_level])
        return bpe

    def _byte_token(self, byte: int) -> int | None:
        """llama_vocab::byte_to_token for SentencePiece vocabularies: <0xXX>, else the byte itself."""
        found = self._ids.get(f"<0x{byte:02X}>")
        return found if found is not None or byte >= 0x80 else self._ids.get(chr(byte))

    def _piece(self, token_id: int) -> bytes:
        """llama_vocab::token_to_piece(special=True, lstrip=0)."""
        attr, text = self._attrs[token_id], self._texts[token_id]
        if attr & (_UNKNOWN | _CONTROL | _USER_DEFINED):
            return text.encode()
        if attr & _NORMAL:
            return _bpe_piece(text) if self._kind == "gpt2" else text.replace(_SPM_SPACE, " ").encode()
        if attr & _BYTE:  # "<0xXX>"; like strtol, llama.cpp reads junk as 0
            digits = text[3:5]
            valid = len(digits) == 2 and all(c in "0123456789abcdefABCDEF" for c in digits)
            return bytes([int(digits, 16) if valid else 0])
        return b""  # unused and undefined tokens render as nothing

    # --- encoding -------------------------------------------------------------------------------

    def encode(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[int]:
        """Token ids for `text`, as llama_tokenize(vocab, text, add_special, parse_special) gives them."""
        ids: list[int] = []
        if add_special and self._add_bos:
            assert self.bos_id is not None  # checked in from_metadata
            ids.append(self.bos_id)
        prev_special = True  # SentencePiece: a space prefix opens the text and follows each special token
        for fragment in self._partition(text, parse_special):
            if isinstance(fragment, int):
                ids.append(fragment)
                prev_special = True
            elif self._kind == "gpt2":
                ids += [i for i in self._bpe_ids(fragment) if i != self.n_vocab]
            else:
                if self._add_space_prefix and prev_special:
                    fragment = " " + fragment
                ids += self._spm(fragment.replace(" ", _SPM_SPACE))
                prev_special = False
        if add_special and self._add_eos:
            assert self.eos_id is not None
            ids.append(self.eos_id)
        return ids

    def _bpe_ids(self, text: str) -> list[int]:
        # encode_batch_fast skips the offsets that encode() tracks: same ids, about a third less memory
        # and half the time on long texts.
        fast = getattr(self._bpe, "encode_batch_fast", None)
        if fast is not None:
            ids: list[int] = fast([text], add_special_tokens=False)[0].ids
            return ids
        return list(self._bpe.encode(text, add_special_tokens=False).ids)

    def _partition(self, text: str, parse_special: bool) -> list[str | int]:
        """tokenizer_st_partition: split special-token texts out of the text, longest token first."""
        fragments: list[str | int] = [text] if text else []
        for token_id in self._specials:
            attr = self._attrs[token_id]
            if not parse_special and attr & (_CONTROL | _UNKNOWN):
                continue  # user-defined tokens split even then
            special = self._texts[token_id]
            if not any(isinstance(f, str) and special in f for f in fragments):
                continue
            out: list[str | int] = []
            for fragment in fragments:
                if isinstance(fragment, str) and special in fragment:
                    out += _split_special(fragment, special, token_id, attr)
                else:
                    out.append(fragment)
            fragments = out
        return fragments

    def _spm(self, text: str) -> list[int]:
        """llm_tokenizer_spm_session::tokenize: merge the best-scoring adjacent pair while one is a token."""
        n = len(text)
        if n == 0:
            return []
        # One symbol per character, linked both ways; merged-away symbols get length 0.
        length = [1] * n
        prev = list(range(-1, n - 1))
        nxt = [*range(1, n), -1]
        queue: list[tuple[float, int, int, int]] = []  # (-score, left, right, size): best, then leftmost

        def try_pair(left: int, right: int) -> None:
            if left < 0 or right < 0:
                return
            size = length[left] + length[right]
            token_id = self._ids.get(text[left : left + size])
            if token_id is not None:
                heapq.heappush(queue, (-self._scores[token_id], left, right, size))

        for i in range(1, n):
            try_pair(i - 1, i)
        while queue:
            _, left, right, size = heapq.heappop(queue)
            if length[left] == 0 or length[right] == 0 or length[left] + length[right] != size:
                continue  # stale: one side merged since
            length[left], length[right] = size, 0
            nxt[left] = nxt[right]
            if nxt[right] >= 0:
                prev[nxt[right]] = left
            try_pair(prev[left], left)
            try_pair(left, nxt[left])

        ids: list[int] = []
        i = 0
        while i >= 0:
            piece = text[i : i + length[i]]
            token_id = self._ids.get(piece)
            # Merged symbols are tokens by construction; a lone character that is not falls back to bytes.
            ids += [token_id] if token_id is not None else [self._byte_id(b) for b in piece.encode()]
            i = nxt[i]
        return ids

    def _byte_id(self, byte: int) -> int:
        found = self._byte_ids[byte]
        if found is not None:
            return found
        if self._unk_id is not None:  # llama.cpp would fail here (no byte token); SentencePiece uses <unk>
            return self._unk_id
        raise TokenizerError(f"the vocabulary has no token for byte 0x{byte:02X} and no unknown token")

    # --- decoding -------------------------------------------------------------------------------

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes `token_id` stands for, special tokens as their text (token_to_piece, special=True)."""
        if not 0 <= token_id < self.n_vocab:
            raise IndexError(f"token id {token_id} out of range [0, {self.n_vocab})")
        return self._pieces[token_id]

    def decode(self, ids: Sequence[int]) -> bytes:
        """llama_detokenize(ids, remove_special=False, unparse_special=True); bytes: ids may split UTF-8."""
        return b"".join(self.decode_stream([ids]))

    def decode_stream(self, chunks: Iterable[Sequence[int] | NDArray[np.integer[Any]]]) -> Iterator[bytes]:
        """`decode` of the ids in `chunks`, one chunk at a time: the byte strings it yields, joined, equal
        decode() of all the ids. Memory is one chunk's worth. Raises IndexError for an id out of range."""
        first = True
        cleaner = _SpaceCleaner() if self._clean else None
        for chunk in chunks:
            pieces = [self._pieces[i] for i in self._checked(chunk)]
            if first and pieces:
                first = False
                if self._add_space_prefix and pieces[0].startswith(b" "):
                    pieces[0] = pieces[0][1:]  # the space encode() put in front
            text = b"".join(pieces)
            yield cleaner.feed(text) if cleaner is not None else text
        if cleaner is not None:
            yield cleaner.finish()

    def decoded_size(self, chunks: Iterable[Sequence[int] | NDArray[np.integer[Any]]]) -> int:
        """len(decode(ids)) for the ids in `chunks`, in memory for one chunk. Raises IndexError as decode."""
        if self._clean:  # cleaning depends on the bytes themselves
            return sum(len(part) for part in self.decode_stream(chunks))
        lengths = self._piece_lengths()
        total, first = 0, True
        for chunk in chunks:
            ids = np.asarray(self._checked(chunk), dtype=np.intp)  # (k,)
            if first and ids.size:
                first = False
                total -= int(self._add_space_prefix and self._pieces[int(ids[0])].startswith(b" "))
            total += int(lengths[ids].sum())
        return total

    def _checked(self, ids: Sequence[int] | NDArray[np.integer[Any]]) -> list[int]:
        """ids as a list of ints, each in 0..n_vocab-1. Raises IndexError naming the first that is not."""
        values = ids.tolist() if isinstance(ids, np.ndarray) else list(ids)
        if values and not 0 <= min(values) <= max(values) < self.n_vocab:
            bad = next(i for i in values if not 0 <= i < self.n_vocab)
            raise IndexError(f"token id {bad} out of range [0, {self.n_vocab})")
        return values

    def _piece_lengths(self) -> NDArray[np.int64]:
        """Each token's byte count, (n_vocab,), made on first use."""
        if self._lengths is None:
            self._lengths = np.array([len(p) for p in self._pieces], dtype=np.int64)
        return self._lengths

    def is_eog(self, token_id: int) -> bool:
        """True for end-of-generation tokens (eos, eot, <|im_end|> and the like), as llama_vocab_is_eog."""
        return token_id in self._eog_ids


def _parse_merges(lines: list[str] | None) -> list[tuple[str, str]]:
    """tokenizer.ggml.merges lines "left right", cut at the first space after position 0; first rank wins."""
    if lines is None:
        raise TokenizerError("gpt2 tokenizer without tokenizer.ggml.merges")
    seen: set[tuple[str, str]] = set()
    merges: list[tuple[str, str]] = []
    for line in lines:
        cut = line.find(" ", 1)
        pair = (line[:cut], line[cut + 1 :])
        if cut > 0 and pair not in seen:
            seen.add(pair)
            merges.append(pair)
    return merges


def _split_special(text: str, special: str, token_id: int, attr: int) -> list[str | int]:
    """`text` around each occurrence of `special`, honouring the token's lstrip/rstrip attributes."""
    parts = text.split(special)
    out: list[str | int] = []
    for k, part in enumerate(parts):
        if k > 0:
            out.append(token_id)
            if attr & _RSTRIP:
                part = part.lstrip(_ASCII_SPACE)
        if k < len(parts) - 1 and attr & _LSTRIP:
            part = part.rstrip(_ASCII_SPACE)
        if part:
            out.append(part)
    return out


def _mark_specials(
    meta: Mapping[str, Any], texts: list[str], attrs: list[int], eos_id: int | None
) -> frozenset[int]:
    """llama_vocab::load's special-token pass: updates `attrs` in place, returns the end-of-generation ids."""
    n = len(texts)
    ids: dict[str, int | None] = {kind: None for kind in _AUTO_SPECIAL}
    for kind, key in _SPECIAL_KEYS:
        ids[kind] = _get_id(meta, key, n, ids[kind])
    for kind, candidates in _AUTO_SPECIAL.items():
        if ids[kind] is None:
            found = [i for i, t in enumerate(texts) if t in candidates]
            if found:  # llama.cpp takes whichever its hash map yields first; the lowest id here
                ids[kind] = found[0]
                attrs[found[0]] |= _CONTROL

    eog = {i for i in (ids["fim_pad"], ids["fim_rep"], ids["fim_sep"]) if i is not None}
    for i, t in enumerate(texts):
        if t in _EOG_TEXTS:
            eog.add(i)
            attrs[i] |= _CONTROL
        elif t in _ALWAYS_RENDERED:
            attrs[i] = _USER_DEFINED
    eog |= {i for i in (eos_id, ids["eot"], ids["eom"]) if i is not None}

    by_text = {texts[i]: i for i in eog}
    # o200k_harmony / solar-open: "<|end|>" ends a message, not the generation.
    if "<|end|>" in by_text and (
        ("<|return|>" in by_text and ("<|call|>" in by_text or "<|calls|>" in by_text))
        or (("<|call|>" in by_text or "<|calls|>" in by_text) and "<|flush|>" in by_text)
    ):
        eog.discard(by_text["<|end|>"])
        attrs[by_text["<|end|>"]] = _USER_DEFINED
    # gemma4 / paddleocr: "</s>" is an ordinary token there.
    if "<|tool_response>" in by_text and "</s>" in by_text:
        eog.discard(by_text["</s>"])
        attrs[by_text["</s>"]] = _NORMAL

    _mark_strip(meta, texts, attrs)
    return frozenset(eog)


def _mark_strip(meta: Mapping[str, Any], texts: list[str], attrs: list[int]) -> None:
    """Per-model lstrip/rstrip attributes llama.cpp sets by model name (end of llama_vocab::load)."""
    name = str(meta.get("general.name", "")).lower()
    if "phi-3" in name or "phi3" in name:
        for i, a in enumerate(attrs):
            if a & (_CONTROL | _USER_DEFINED | _UNKNOWN):
                attrs[i] |= _RSTRIP
        for t, on in (("</s>", True), ("<unk>", False), ("<s>", False), ("<|endoftext|>", False)):
            if t in texts:
                i = texts.index(t)
                attrs[i] = attrs[i] | _RSTRIP if on else attrs[i] & ~_RSTRIP
    elif "modern-bert" in name and "[MASK]" in texts:
        attrs[texts.index("[MASK]")] |= _LSTRIP
