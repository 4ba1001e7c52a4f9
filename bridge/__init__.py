r"""bridge: WebAssembly guests call typed Python host functions with raw pointers, safely.

A host function declares its pointer parameters as arrays with their lengths; bridge checks every
pointer against the guest's memory and hands the function a zero-copy numpy view:

>>> import numpy as np
>>> from typing import Annotated
>>> from numpy.typing import NDArray
>>> from bridge import Guest, HostFunctions, In, i64, u32
>>> host = HostFunctions()
>>> @host.function
... def total(xs: Annotated[NDArray[np.int32], In("n")], n: u32) -> i64:
...     return int(xs.sum())
>>> guest = Guest(b'''(module
...   (import "env" "total" (func $total (param i32 i32) (result i64)))
...   (memory (export "memory") 1)
...   (data (i32.const 16) "\\01\\00\\00\\00\\02\\00\\00\\00\\03\\00\\00\\00")
...   (func (export "sum3") (result i64) (call $total (i32.const 16) (i32.const 3))))''', hosts=[host])
>>> guest.call("sum3")
6
>>> guest.call("sum3") == total(np.array([1, 2, 3], np.int32), 3)  # still a plain function
True
>>> guest.close()
"""

from importlib import metadata as _metadata

from .errors import (
    BoundsError,
    BridgeError,
    BuildError,
    DeclarationError,
    GuestExit,
    GuestInterrupted,
    GuestTimeout,
    GuestTrap,
    HostError,
    LinkError,
    ModuleError,
    OutOfFuel,
)
from .guest import Guest, GuestModule, load_module
from .hints import In, InOut, Out, Ptr, Utf8, f32, f64, i32, i64, u32, u64, usize
from .host import Context, HandleError, HandleLimitError, Handles, HostFunction, HostFunctions
from .limits import HostMemory, Limits
from .memory import GuestMemory
from .toolchain import build

try:
    __version__ = _metadata.version("bridge")
except _metadata.PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "BoundsError",
    "BridgeError",
    "BuildError",
    "Context",
    "DeclarationError",
    "Guest",
    "GuestExit",
    "GuestInterrupted",
    "GuestMemory",
    "GuestModule",
    "GuestTimeout",
    "GuestTrap",
    "HandleError",
    "HandleLimitError",
    "Handles",
    "HostError",
    "HostFunction",
    "HostFunctions",
    "HostMemory",
    "In",
    "InOut",
    "Limits",
    "LinkError",
    "ModuleError",
    "Out",
    "OutOfFuel",
    "Ptr",
    "Utf8",
    "__version__",
    "build",
    "f32",
    "f64",
    "i32",
    "i64",
    "load_module",
    "u32",
    "u64",
    "usize",
]
