"""Realm: LLM inference for wasm guests, with the model's weights kept host-side.

`Model` is the plain Python API (no guest involved); `realm_functions` adapts it to the `realm_*` host
functions guests import (ABI version 1.2, `guest/include/realm.h`), serving the models of a `ModelStore`.
"""

from .abi import ABI_MINOR_VERSION, ABI_VERSION, ModelStore, RealmStats, realm_functions
from .model import Config, KVContext, Model, ModelError, RealmError
from .tokenizer import Tokenizer, TokenizerError

__all__ = [
    "ABI_MINOR_VERSION",
    "ABI_VERSION",
    "Config",
    "KVContext",
    "Model",
    "ModelError",
    "ModelStore",
    "RealmError",
    "RealmStats",
    "Tokenizer",
    "TokenizerError",
    "realm_functions",
]
