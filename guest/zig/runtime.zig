//! runtime.zig: bridge's runtime ABI, version 1.1: the `bridge.*` imports a wasm64 guest
//! has instead of WASI (preview 1 is 32-bit only). Guests use them through bridge.zig, the same calls
//! on wasm32 (WASI) and wasm64.
//!
//! GENERATED from bridge/guest.py by `python -m bridge.realm.header`; do not edit.

pub const BRIDGE_RUNTIME_ABI_VERSION: i32 = 1;
pub const BRIDGE_RUNTIME_ABI_MINOR_VERSION: i32 = 1;

/// Writes to the guest's stdout (1) or stderr (2); returns the bytes written, -1 for another fd.
pub extern "bridge" fn write(fd: i32, data: [*]const u8, length: usize) i32;
/// Reads up to cap bytes of the guest's stdin (fd 0) -> bytes read, 0 at its end, -1 on failure.
pub extern "bridge" fn read(fd: i32, out: [*]u8, cap: usize) i32;
/// Ends the guest with exit status `code`.
pub extern "bridge" fn exit(code: i32) void;
/// How many arguments the guest has, argv[0] included.
pub extern "bridge" fn args_count() i32;
/// Argument `index` as UTF-8: returns its length, and writes it only when it fits in `cap`.
pub extern "bridge" fn arg_get(index: u32, out: [*]u8, cap: usize) i32;
