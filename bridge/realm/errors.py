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
    """


class RealmError(BridgeError):
    """An invalid request on an open model or context (bad layer, position, token id...).

    `code` is the realm ABI's negative error code for it.
    """

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
