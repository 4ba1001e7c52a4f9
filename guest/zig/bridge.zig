//! bridge.zig: what a Zig guest asks of its host besides realm (writing to stdout and stderr, reading
//! stdin, its arguments, exiting), as the same calls on both targets: WASI on wasm32, bridge's runtime
//! ABI (runtime.zig, the `bridge.*` imports) on wasm64, where WASI preview 1 does not exist.
//!
//!   const bridge = @import("bridge");
//!   bridge.print(bridge.stdout, "{d} tokens\n", .{n});
//!
//! `bridge build x.zig` (either target) provides this module, and on wasm64 the start code that calls
//! the guest's `pub fn main` (start64.zig).
const std = @import("std");
const builtin = @import("builtin");
const runtime = @import("runtime");
const wasi = std.os.wasi;

/// True when built for wasm64 (bridge's runtime), false for wasm32 (WASI).
pub const is64 = builtin.cpu.arch == .wasm64;

pub const stdin: i32 = 0;
pub const stdout: i32 = 1;
pub const stderr: i32 = 2;

// One write or read moves at most this much: the runtime's result is an i32.
const max_chunk: usize = 1 << 30;

/// Writes all of `bytes` to `stdout` or `stderr`; false when the host refused (another fd, a closed stream).
pub fn write(fd: i32, bytes: []const u8) bool {
    var done: usize = 0;
    while (done < bytes.len) {
        const len = @min(bytes.len - done, max_chunk);
        var n: usize = 0;
        if (is64) {
            const r = runtime.write(fd, bytes.ptr + done, len);
            if (r <= 0) return false;
            n = @intCast(r);
        } else {
            const iov = [_]wasi.ciovec_t{.{ .base = bytes.ptr + done, .len = len }};
            if (wasi.fd_write(fd, &iov, 1, &n) != .SUCCESS or n == 0) return false;
        }
        done += n;
    }
    return true;
}

/// `std.fmt` formatting into a 4 KiB buffer, then `write`; longer output is cut, ending in "...".
pub fn print(fd: i32, comptime format: []const u8, args: anytype) void {
    var buf: [4096]u8 = undefined;
    const text = std.fmt.bufPrint(&buf, format, args) catch blk: {
        @memcpy(buf[buf.len - 4 ..], "...\n");
        break :blk buf[0..];
    };
    _ = write(fd, text);
}

/// Reads up to `out.len` bytes of stdin: how many, 0 at its end; null when the read failed.
pub fn read(out: []u8) ?usize {
    const len = @min(out.len, max_chunk);
    if (is64) {
        const r = runtime.read(stdin, out.ptr, len);
        return if (r < 0) null else @intCast(r);
    }
    const iov = [_]wasi.iovec_t{.{ .base = out.ptr, .len = len }};
    var n: usize = 0;
    return if (wasi.fd_read(stdin, &iov, 1, &n) == .SUCCESS) n else null;
}

/// Ends the guest with exit status `code`.
pub fn exit(code: u8) noreturn {
    if (is64) {
        runtime.exit(code);
        @trap(); // the host does not return from exit
    }
    wasi.proc_exit(code);
}

// wasm32: WASI hands over every argument at once, so they are fetched once into these.
var wasi_argv: [1024][*:0]u8 = undefined;
var wasi_argv_bytes: [65536]u8 = undefined;
var wasi_argc: ?usize = null;

fn wasiArgs() usize {
    if (wasi_argc) |argc| return argc;
    var argc: usize = 0;
    var size: usize = 0;
    const fits = wasi.args_sizes_get(&argc, &size) == .SUCCESS and argc <= wasi_argv.len and
        size <= wasi_argv_bytes.len and wasi.args_get(&wasi_argv, &wasi_argv_bytes) == .SUCCESS;
    wasi_argc = if (fits) argc else 0;
    return wasi_argc.?;
}

/// How many arguments the guest has, its name (argument 0) included. On wasm32, arguments past 1024 or
/// 64 KiB in all are not seen.
pub fn argCount() usize {
    if (is64) return @intCast(@max(runtime.args_count(), 0));
    return wasiArgs();
}

/// Argument `index` copied into `out`: the part of `out` it fills; null past the last argument, or when
/// it does not fit.
pub fn arg(index: usize, out: []u8) ?[]u8 {
    if (index >= argCount()) return null;
    if (is64) {
        const r = runtime.arg_get(@intCast(index), out.ptr, out.len);
        if (r < 0 or @as(usize, @intCast(r)) > out.len) return null;
        return out[0..@intCast(r)];
    }
    const value = std.mem.span(wasi_argv[index]);
    if (value.len > out.len) return null;
    @memcpy(out[0..value.len], value);
    return out[0..value.len];
}
