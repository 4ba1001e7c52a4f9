//! paris-zig: the Paris guest in Zig, on the realm ABI's generated bindings (guest/zig/realm.zig) and
//! bridge.zig (output, arguments and exit on either target).
//!
//! The same loop as examples/paris/paris.c: ChatML prompt, tokenize, prefill each layer in one call,
//! greedy decode, stream whole UTF-8 characters. The weights stay on the host; this guest holds token
//! ids, one batch of hidden states and one row of logits, in fixed buffers.
//!
//!   python -m bridge run examples/paris-zig [--target wasm64] [-- Your question?]
const std = @import("std");
const bridge = @import("bridge");
const realm = @import("realm");

const model_name = "smollm2";
const max_new_tokens = 64;

// Fixed buffers: no allocator needed. Sizes bound the prompt and the model this guest can run.
var ids: [2048]u32 = undefined;
var hidden: [1 << 21]f32 = undefined; // prompt tokens x n_embd
var logits: [1 << 18]f32 = undefined; // n_vocab
var prompt: [8192]u8 = undefined;

fn fail(what: []const u8, code: i32) noreturn {
    bridge.print(bridge.stderr, "paris-zig: {s} failed with code {d}\n", .{ what, code });
    bridge.exit(1);
}

fn check(what: []const u8, rc: i32) i32 {
    if (rc < 0) fail(what, rc);
    return rc;
}

/// The question: every argument after the program's name, joined by spaces; a default without any.
fn question(out: []u8) []const u8 {
    const fallback = "What is the capital of France?";
    if (bridge.argCount() < 2) return fallback;
    var len: usize = 0;
    var i: usize = 1;
    while (i < bridge.argCount()) : (i += 1) {
        const space: usize = if (i > 1) 1 else 0;
        if (len + space > out.len) break;
        const word = bridge.arg(i, out[len + space ..]) orelse break; // copied in place, after the space
        if (space == 1) out[len] = ' ';
        len += space + word.len;
    }
    return out[0..len];
}

/// Length of the longest prefix of buf that does not end inside a UTF-8 sequence.
fn completeUtf8(buf: []const u8) usize {
    var i = buf.len;
    var back: usize = 0;
    while (i > 0 and back < 4 and (buf[i - 1] & 0xC0) == 0x80) {
        i -= 1;
        back += 1;
    }
    if (i == 0) return buf.len;
    const lead = buf[i - 1];
    const need: usize = if (lead >= 0xF0) 4 else if (lead >= 0xE0) 3 else if (lead >= 0xC0) 2 else 1;
    return if (back + 1 >= need) buf.len else i - 1;
}

fn argmax(xs: []const f32) u32 {
    var best: usize = 0;
    for (xs, 0..) |x, i| {
        if (x > xs[best]) best = i;
    }
    return @intCast(best);
}

pub fn main() void {
    var words: [4096]u8 = undefined;
    const q = question(&words);

    const model = check("realm_model_open", realm.realm_model_open(model_name, model_name.len));
    var info: realm.ModelInfo = undefined;
    _ = check("realm_model_info_get", realm.realm_model_info_get(model, &info, @sizeOf(realm.ModelInfo)));
    if (info.n_vocab > logits.len) fail("fitting the vocabulary", realm.REALM_ENOMEM);

    // the ChatML user turn with no system turn, as examples/paris
    const text = std.fmt.bufPrint(&prompt, "<|im_start|>user\n{s}<|im_end|>\n<|im_start|>assistant\n", .{q}) catch
        fail("fitting the question", realm.REALM_ENOMEM);
    const n_prompt: u32 = @intCast(check("realm_tokenize", realm.realm_tokenize(model, text.ptr, text.len, &ids, ids.len)));
    if (n_prompt == 0 or n_prompt > ids.len or @as(usize, n_prompt) * info.n_embd > hidden.len)
        fail("fitting the prompt", realm.REALM_ENOMEM);

    // stop at EOS, and at <|im_end|> when the vocabulary has it as one token
    const end_text = "<|im_end|>";
    var end_ids: [4]u32 = undefined;
    const n_end = realm.realm_tokenize(model, end_text, end_text.len, &end_ids, end_ids.len);
    const im_end = if (n_end == 1) end_ids[0] else info.eos_id;

    const n_ctx: u32 = @min(n_prompt + max_new_tokens, info.n_ctx_train);
    const ctx = check("realm_context_new", realm.realm_context_new(model, n_ctx));
    const d = info.n_embd;

    // prefill: the whole prompt through each layer in one call
    _ = check("realm_embed_tokens", realm.realm_embed_tokens(model, &ids, n_prompt, &hidden, @as(usize, n_prompt) * d));
    var layer: u32 = 0;
    while (layer < info.n_layer) : (layer += 1)
        _ = check("realm_forward_layer", realm.realm_forward_layer(ctx, layer, &hidden, n_prompt, 0));
    const last = hidden[@as(usize, n_prompt - 1) * d ..];
    _ = check("realm_compute_logits", realm.realm_compute_logits(model, last.ptr, &logits, info.n_vocab));

    // decode greedily, streaming whole UTF-8 characters as they complete
    var pending: [256]u8 = undefined;
    var n_pending: usize = 0;
    var position: u32 = n_prompt;
    var step: u32 = 0;
    while (step < max_new_tokens and position < n_ctx) : (step += 1) {
        var token = argmax(logits[0..info.n_vocab]);
        if (token == info.eos_id or token == im_end) break;
        const len = check("realm_detokenize", realm.realm_detokenize(model, @ptrCast(&token), 1, pending[n_pending..].ptr, pending.len - n_pending));
        if (@as(usize, @intCast(len)) <= pending.len - n_pending) n_pending += @intCast(len);
        const ready = completeUtf8(pending[0..n_pending]);
        _ = bridge.write(bridge.stdout, pending[0..ready]);
        std.mem.copyForwards(u8, pending[0 .. n_pending - ready], pending[ready..n_pending]);
        n_pending -= ready;

        _ = check("realm_embed_tokens", realm.realm_embed_tokens(model, @ptrCast(&token), 1, &hidden, d));
        layer = 0;
        while (layer < info.n_layer) : (layer += 1)
            _ = check("realm_forward_layer", realm.realm_forward_layer(ctx, layer, &hidden, 1, position));
        _ = check("realm_compute_logits", realm.realm_compute_logits(model, &hidden, &logits, info.n_vocab));
        position += 1;
    }
    _ = bridge.write(bridge.stdout, pending[0..n_pending]);
    _ = bridge.write(bridge.stdout, "\n");
    _ = realm.realm_context_free(ctx);
    _ = realm.realm_model_close(model);
}
