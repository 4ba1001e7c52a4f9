"""The realm's two errors and the ABI's error codes, in a module of their own so that the GGUF parser,
the model and the store can all raise them without importing one another.

`bridge.realm.model` re-exports every name here; `from bridge.realm.model import ModelError` keeps working.
"""

from __future__ import annotations

from ..errors import BridgeError

__all__ = ["EBADF", "EINVAL", "ENOENT", "ENOMEM", "ModelError", "RealmError"]

EINVAL, EBADF, ENOENT, ENOMEM = -1, -2, -3, -4


class ModelError(BridgeError):
    """A model file that is not a usable GGUF, or a model this host cannot run.

    The message names the file and the field at fault.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from bridge.realm import Model
    >>> from bridge.realm.store import packaged_model_path
    >>> tmp = tempfile.TemporaryDirectory()
    >>> garbage = Path(tmp.name, "garbage.gguf")
    >>> _ = garbage.write_bytes(b"not a model at all")
    >>> Model.open(garbage)  # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    bridge.realm.errors.ModelError: .../garbage.gguf:
    not a usable GGUF file: magic is b'not ', expected b'GGUF'

    A file cut short fails at the first thing it cannot hold, before any weight is used:

    >>> truncated = Path(tmp.name, "truncated.gguf")
    >>> with packaged_model_path().open("rb") as real:  # the model's first MiB of 94
    ...     _ = truncated.write_bytes(real.read(1 << 20))
    >>> Model.open(truncated)  # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    bridge.realm.errors.ModelError: .../truncated.gguf: metadata `tokenizer.ggml.merges`:
    48900 STRING elements need at least 391200 bytes, but only 88381 remain after offset 960195:
    the file is truncated or the count is corrupt
    >>> tmp.cleanup()
    """


class RealmError(BridgeError):
    """An invalid request on an open model or context (bad layer, position, token id...).

    `code` is the realm ABI's negative error code for it.

    The realm host functions hand `code` to the guest as their result; in Python it is raised:

    >>> from bridge.realm import Model, RealmError
    >>> from bridge.realm.abi import ERROR_CODES
    >>> from bridge.realm.store import packaged_model_path
    >>> model = Model.open(packaged_model_path())
    >>> model.detokenize([50_000])
    Traceback (most recent call last):
    ...
    bridge.realm.errors.RealmError: token id 50000 is outside the vocabulary (0..49151)
    >>> try:
    ...     model.new_context(100_000)
    ... except RealmError as exc:
    ...     print(exc, exc.code == ERROR_CODES["REALM_EINVAL"])
    n_ctx 100000 is not in 1..8192 True
    """

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
