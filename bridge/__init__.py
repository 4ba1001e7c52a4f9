"""bridge: WebAssembly guests call typed Python host functions with raw pointers, safely.

host = HostFunctions()

@host.function
def total(xs: Annotated[NDArray[np.int32], In("n")], n: u32) -> i64:
    return int(xs.sum())

Guest(load_module("guest.wasm"), hosts=[host]).run()
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
