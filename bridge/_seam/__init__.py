"""The seam to wasmtime: the only part of bridge that imports it.

Everything wasmtime-specific lives here, so an upgrade of wasmtime touches this package alone:

* `engine`: the engine's configuration (features, memories that never move, epoch interruption, fuel)
  and the ticker thread that advances the epoch while guests run;
* `module`: reading, validating and compiling modules (binary or text), their imports and exports as
  plain data, feature probes;
* `calls`: the host-call trampoline, the per-store controls behind time limits and interrupts, and the
  conversion of every wasmtime error into bridge's errors;
* `instance`: one store with its limits and WASI set-up, its linker, memories and instance.

The rest of bridge talks to these in plain Python types (strings for wasm value types, ints, bytes).
"""

from .calls import TrapSlot, in_guest, interrupt_all, interrupted, reset_interrupt
from .engine import FEATURE_SETTINGS, make_engine
from .instance import Instance, MemoryAccess, StoreLimits, WasiSpec
from .module import (
    CompiledModule,
    ExternInfo,
    compile_module,
    feature_validates,
    raw_hostcall_loop,
    read_module_file,
    wat2wasm,
)

__all__ = [
    "FEATURE_SETTINGS",
    "CompiledModule",
    "ExternInfo",
    "Instance",
    "MemoryAccess",
    "StoreLimits",
    "TrapSlot",
    "WasiSpec",
    "compile_module",
    "feature_validates",
    "in_guest",
    "interrupt_all",
    "interrupted",
    "make_engine",
    "raw_hostcall_loop",
    "read_module_file",
    "reset_interrupt",
    "wat2wasm",
]
