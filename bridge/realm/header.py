"""Generates the guests' bindings from the host function declarations: the realm ABI as the C header
guest/include/realm.h and the Zig module guest/zig/realm.zig, and the wasm64 runtime ABI (the `bridge.*`
imports) as guest/zig/runtime.zig, which guest/zig/bridge.zig builds on.

python -m bridge.realm.header            # rewrite them
python -m bridge.realm.header --check    # exit 1 if any is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cheader import render_header, render_zig
from ..toolchain import INCLUDE_DIR, ZIG_DIR
from .abi import ABI_MINOR_VERSION, ABI_VERSION, ERROR_CODES, MODEL_INFO_FIELDS, ModelStore, realm_functions

HEADER_PATH = INCLUDE_DIR / "realm.h"
ZIG_PATH = ZIG_DIR / "realm.zig"
RUNTIME_ZIG_PATH = ZIG_DIR / "runtime.zig"


def render() -> str:
    registry = realm_functions(ModelStore())
    fields = "\n".join(f"    uint32_t {name};" for name in MODEL_INFO_FIELDS)
    errors = "\n".join(f"#define {name} ({code})" for name, code in ERROR_CODES.items())
    version = f"{ABI_VERSION}.{ABI_MINOR_VERSION}"
    preamble = f"""/* realm.h: the realm ABI, version {version}, for wasm guests that run LLMs on the host.
 *
 * GENERATED from bridge/realm/abi.py by `python -m bridge.realm.header`; do not edit.
 *
 * Every function returns int32_t; a negative value is one of the REALM_E* codes. size_t is the
 * guest's pointer width (u32 on wasm32, u64 on wasm64). Functions with variable-size output return
 * the size they need and write only when it fits the capacity given. A pointer range outside the
 * guest's memory is not an error code: the host traps the guest.
 */"""
    declarations = f"""#define REALM_ABI_VERSION {ABI_VERSION}
#define REALM_ABI_MINOR_VERSION {ABI_MINOR_VERSION} /* 1: realm_chat_apply; 2: realm_model_name */
{errors}

/* All u32, in this order; later versions may append fields. */
typedef struct {{
{fields}
}} realm_model_info;"""
    return render_header(
        registry, "REALM_H", macro="REALM_IMPORT", preamble=preamble, declarations=declarations
    )


def render_zig_module() -> str:
    """guest/zig/realm.zig: the same functions, codes and struct for Zig guests (`@import("realm")`)."""
    registry = realm_functions(ModelStore())
    fields = "\n".join(f"    {name}: u32," for name in MODEL_INFO_FIELDS)
    errors = "\n".join(f"pub const {name}: i32 = {code};" for name, code in ERROR_CODES.items())
    version = f"{ABI_VERSION}.{ABI_MINOR_VERSION}"
    return f"""//! realm.zig: the realm ABI, version {version}, for Zig wasm guests that run LLMs on the host.
//!
//! GENERATED from bridge/realm/abi.py by `python -m bridge.realm.header`; do not edit. The same
//! declarations as realm.h: every function returns i32, a negative value being one of the REALM_E*
//! codes; functions with variable-size output return the size they need and write only when it fits.

pub const REALM_ABI_VERSION: i32 = {ABI_VERSION};
pub const REALM_ABI_MINOR_VERSION: i32 = {ABI_MINOR_VERSION};
{errors}

/// All u32, in this order; later versions may append fields.
pub const ModelInfo = extern struct {{
{fields}
}};

{render_zig(registry, {"realm_model_info": "ModelInfo"})}
"""


def render_runtime_zig() -> str:
    """guest/zig/runtime.zig: the wasm64 runtime's `bridge.*` imports, for Zig guests (through bridge.zig)."""
    from ..guest import RUNTIME_ABI_MINOR_VERSION, RUNTIME_ABI_VERSION, system

    version = f"{RUNTIME_ABI_VERSION}.{RUNTIME_ABI_MINOR_VERSION}"
    return f"""//! runtime.zig: bridge's runtime ABI, version {version}: the `bridge.*` imports a wasm64 guest
//! has instead of WASI (preview 1 is 32-bit only). Guests use them through bridge.zig, the same calls
//! on wasm32 (WASI) and wasm64.
//!
//! GENERATED from bridge/guest.py by `python -m bridge.realm.header`; do not edit.

pub const BRIDGE_RUNTIME_ABI_VERSION: i32 = {RUNTIME_ABI_VERSION};
pub const BRIDGE_RUNTIME_ABI_MINOR_VERSION: i32 = {RUNTIME_ABI_MINOR_VERSION};

{render_zig(system)}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.realm.header", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the header is out of date")
    args = parser.parse_args(argv)
    stale = 0
    outputs = (
        (HEADER_PATH, render()),
        (ZIG_PATH, render_zig_module()),
        (RUNTIME_ZIG_PATH, render_runtime_zig()),
    )
    for path, text in outputs:
        current = path.read_text() if path.exists() else ""
        if args.check:
            if current != text:
                print(f"{path} is out of date; run python -m bridge.realm.header", file=sys.stderr)
                stale = 1
            continue
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    return stale


if __name__ == "__main__":
    sys.exit(main())
