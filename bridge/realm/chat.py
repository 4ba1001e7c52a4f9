"""Chat formatting: the GGUF's own `tokenizer.chat_template`, rendered with jinja2 in a sandbox.

As llama-cpp-python does (its Jinja2ChatFormatter), the template sees `messages` (a list of
{"role": ..., "content": ...}), `add_generation_prompt`, `bos_token` and `eos_token`, and may call
`raise_exception(message)` and `strftime_now(format)`; blocks are trimmed (`trim_blocks`,
`lstrip_blocks`). The environment is jinja2's immutable sandbox: no attribute of Python internals, no
mutation of what the template is given.

The template comes from the model file and the messages from a guest, so rendering is bounded whatever
either does: the messages JSON is at most MAX_MESSAGES_BYTES, the output at most MAX_OUTPUT_BYTES, and the
time RENDER_SECONDS (a template can loop without producing output, so the deadline is checked on every
line the compiled template runs).

    render(template, b'[{"role": "user", "content": "Hi"}]', add_generation_prompt=True, bos="", eos="")
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from types import FrameType
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import EINVAL, ENOMEM, RealmError

MAX_MESSAGES_BYTES = 1 << 20
MAX_OUTPUT_BYTES = 4 << 20
RENDER_SECONDS = 2.0


class _TemplateError(Exception):
    """raise_exception() called by the template."""


def _raise_exception(message: str) -> None:
    raise _TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


_ENVIRONMENT = ImmutableSandboxedEnvironment(
    loader=jinja2.BaseLoader(), trim_blocks=True, lstrip_blocks=True, autoescape=False
)
_ENVIRONMENT.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)


def compile_template(source: str) -> jinja2.Template:
    """The template, compiled. Raises RealmError(EINVAL) when it does not parse."""
    try:
        return _ENVIRONMENT.from_string(source)
    except jinja2.TemplateError as exc:
        raise RealmError(f"the model's chat template does not parse: {exc}", EINVAL) from None


def parse_messages(data: bytes) -> list[dict[str, Any]]:
    """The guest's messages: a JSON array of objects, each with a string `role` and a string (or null)
    `content`; other keys pass through to the template. Raises RealmError(EINVAL) for anything else."""
    if len(data) > MAX_MESSAGES_BYTES:
        raise RealmError(f"the messages are {len(data)} bytes, over {MAX_MESSAGES_BYTES}", EINVAL)
    try:
        messages = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise RealmError(f"the messages are not JSON: {exc}", EINVAL) from None
    if not isinstance(messages, list):
        raise RealmError("the messages must be a JSON array", EINVAL)
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RealmError(f"message {i} must be an object with a string `role`", EINVAL)
        if not isinstance(message.get("content"), str | None):
            raise RealmError(f"message {i} has a `content` that is not a string", EINVAL)
    return messages


def render(
    template: jinja2.Template,
    messages: list[dict[str, Any]],
    *,
    add_generation_prompt: bool,
    bos: str,
    eos: str,
) -> bytes:
    """The prompt the template makes of `messages`, as UTF-8.

    Raises RealmError: EINVAL when the template fails (raise_exception, an undefined call, a sandbox
    refusal) or passes RENDER_SECONDS, ENOMEM when its output passes MAX_OUTPUT_BYTES.
    """
    deadline = time.monotonic() + RENDER_SECONDS

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise TimeoutError
        return trace

    pieces: list[str] = []
    size = 0
    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        for piece in template.generate(
            messages=messages, add_generation_prompt=add_generation_prompt, bos_token=bos, eos_token=eos
        ):
            size += len(piece)  # characters: at most 4 bytes each, checked again below
            if size > MAX_OUTPUT_BYTES:
                raise RealmError(f"the chat template's output passes {MAX_OUTPUT_BYTES} bytes", ENOMEM)
            pieces.append(piece)
    except RealmError:
        raise
    except TimeoutError:
        raise RealmError(f"the chat template ran past {RENDER_SECONDS} s", EINVAL) from None
    except _TemplateError as exc:
        raise RealmError(f"the chat template refused the messages: {exc}", EINVAL) from None
    except Exception as exc:  # any failure inside the template: undefined names, sandbox refusals, types
        raise RealmError(f"the chat template failed: {type(exc).__name__}: {exc}", EINVAL) from None
    finally:
        sys.settrace(previous)
    text = "".join(pieces).encode("utf-8", "surrogatepass")
    if len(text) > MAX_OUTPUT_BYTES:
        raise RealmError(f"the chat template's output passes {MAX_OUTPUT_BYTES} bytes", ENOMEM)
    return text
