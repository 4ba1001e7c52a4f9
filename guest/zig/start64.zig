//! start64.zig: the start code of a wasm64 Zig guest, which has no WASI start code to call its main.
//! `bridge build --target wasm64 x.zig` makes this the root module and the guest's file module "app":
//! `_start` calls the guest's `pub fn main` and exits with its status, as Zig's own start code does
//! (void is 0, a u8 is the status, an error prints its name and is 1). A panic prints its message on
//! stderr, then traps.
const std = @import("std");
const app = @import("app");
const bridge = @import("bridge");

pub const panic = std.debug.FullPanic(onPanic);

fn onPanic(message: []const u8, _: ?usize) noreturn {
    bridge.print(bridge.stderr, "panic: {s}\n", .{message});
    @trap();
}

export fn _start() void {
    const Result = @typeInfo(@TypeOf(app.main)).@"fn".return_type.?;
    switch (@typeInfo(Result)) {
        .void, .noreturn => {
            app.main();
            bridge.exit(0);
        },
        .int => bridge.exit(app.main()),
        .error_union => |e| {
            const value = app.main() catch |err| {
                bridge.print(bridge.stderr, "error: {s}\n", .{@errorName(err)});
                bridge.exit(1);
            };
            if (e.payload == void) bridge.exit(0) else bridge.exit(value);
        },
        else => @compileError("main must return void, u8, !void or !u8"),
    }
}
