"""Generates guest/include/realm.h from the realm host function declarations.

python -m bridge.realm.header            # rewrite guest/include/realm.h
python -m bridge.realm.header --check    # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cheader import render_prototypes
from ..toolchain import INCLUDE_DIR
from .abi import ABI_MINOR_VERSION, ABI_VERSION, ERROR_CODES, MODEL_INFO_FIELDS, ModelStore, realm_functions

HEADER_PATH = INCLUDE_DIR / "realm.h"


def render() -> str:
    registry = realm_functions(ModelStore())
    fields = "\n".join(f"    uint32_t {name};" for name in MODEL_INFO_FIELDS)
    errors = "\n".join(f"#define {name} ({code})" for name, code in ERROR_CODES.items())
    version = f"{ABI_VERSION}.{ABI_MINOR_VERSION}"
    return f"""/* realm.h: the realm ABI, version {version}, for wasm guests that run LLMs on the host.
 *
 * GENERATED from bridge/realm/abi.py by `python -m bridge.realm.header`; do not edit.
 *
 * Every function returns int32_t; a negative value is one of the REALM_E* codes. size_t is the
 * guest's pointer width (u32 on wasm32, u64 on wasm64). Functions with variable-size output return
 * the size they need and write only when it fits the capacity given. A pointer range outside the
 * guest's memory is not an error code: the host traps the guest.
 */
#ifndef REALM_H
#define REALM_H

#include <stddef.h>
#include <stdint.h>

#define REALM_ABI_VERSION {ABI_VERSION}
#define REALM_ABI_MINOR_VERSION {ABI_MINOR_VERSION} /* 1: realm_chat_apply; 2: realm_model_name */
{errors}

/* All u32, in this order; later versions may append fields. */
typedef struct {{
{fields}
}} realm_model_info;

#define REALM_IMPORT(name) __attribute__((import_module("env"), import_name(#name)))

{render_prototypes(registry, "REALM_IMPORT")}

#endif /* REALM_H */
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.realm.header", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the header is out of date")
    args = parser.parse_args(argv)
    text = render()
    current = HEADER_PATH.read_text() if HEADER_PATH.exists() else ""
    if args.check:
        if current != text:
            print(f"{HEADER_PATH} is out of date; run python -m bridge.realm.header", file=sys.stderr)
            return 1
        return 0
    Path(HEADER_PATH).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
