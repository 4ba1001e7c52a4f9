//! paris-zig: the Paris guest in Zig, on the realm ABI's generated bindings (guest/zig/realm.zig),
//! bridge.zig (output, arguments and exit on either target) and realm_sample.zig (the same choices as
//! the C examples' realm_sample.h, so a seed gives both the same tokens).
//!
//! The same loop as examples/paris/paris.c: ChatML prompt, tokenize, prefill each layer in one call,
//! decode (greedy unless --temp), stream whole UTF-8 characters. The weights stay on the host; this
//! guest holds token ids, one batch of hidden states and one row of logits, in fixed buffers.
//!
//!   python -m bridge run examples/paris-zig [--target wasm64] [-- [OPTIONS] Your question?]
//!
//! Options, before the question: -n/--max-tokens N (default 64; stderr says when it cut the answer),
//! --temp T, --top-k K, --top-p P, --min-p M, --repeat-penalty R, --seed S.
const std = @import("std");
const bridge = @import("bridge");
const realm = @import("realm");
const sample = @import("realm_sample");

const model_name = "smollm2";
const default_max_tokens = 64;

// Fixed buffers: no allocator needed. Sizes bound the prompt and the model this guest can run.
var ids: [2048]u32 = undefined;
var hidden: [1 << 21]f32 = undefined; // prompt tokens x n_embd
var logits: [1 << 18]f32 = undefined; // n_vocab
var candidates: [1 << 18]sample.Candidate = undefined; // the sampler's scratch, n_vocab at most
var prompt: [8192]u8 = undefined;
var arg_bytes: [8192]u8 = undefined;
var arg_slices: [256][]const u8 = undefined;

fn fail(what: []const u8, code: i32) noreturn {
    bridge.print(bridge.stderr, "paris-zig: {s} failed with code {d}\n", .{ what, code });
    bridge.exit(1);
}

fn check(what: []const u8, rc: i32) i32 {
    if (rc < 0) fail(what, rc);
    return rc;
}

/// The arguments after the program's name, copied into arg_bytes.
fn arguments() []const []const u8 {
    var used: usize = 0;
    var n: usize = 0;
    var i: usize = 1;
    while (i < bridge.argCount() and n < arg_slices.len) : (i += 1) {
        const arg = bridge.arg(i, arg_bytes[used..]) orelse break;
        arg_slices[n] = arg;
        n += 1;
        used += arg.len;
    }
    return arg_slices[0..n];
}

/// The words, joined by spaces; a default without any.
fn join(words: []const []const u8, out: []u8) []const u8 {
    if (words.len == 0) return "What is the capital of France?";
    var len: usize = 0;
    for (words, 0..) |word, i| {
        const space: usize = if (i > 0) 1 else 0;
        if (len + space + word.len > out.len) break;
        if (space == 1) out[len] = ' ';
        @memcpy(out[len + space .. len + space + word.len], word);
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

pub fn main() u8 {
    var params = sample.Params{};
    var max_tokens: u32 = default_max_tokens;
    const args = arguments();
    const first_word = switch (sample.parseArgs(args, &params, &max_tokens)) {
        .first_word => |i| i,
        .unknown => |opt| {
            bridge.print(bridge.stderr, "paris-zig: unknown option {s} (options: -n/--max-tokens, --temp, --top-k, " ++
                "--top-p, --min-p, --repeat-penalty, --seed)\n", .{opt});
            return 2;
        },
        .no_value => |opt| {
            bridge.print(bridge.stderr, "paris-zig: {s} needs a value\n", .{opt});
            return 2;
        },
        .bad_value => |bad| {
            bridge.print(bridge.stderr, "paris-zig: {s} {s} is out of range or not a number\n", .{ bad[0], bad[1] });
            return 2;
        },
    };
    var words: [4096]u8 = undefined;
    const q = join(args[first_word..], &words);

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

    const n_ctx: u32 = @intCast(@min(@as(u64, n_prompt) + max_tokens, info.n_ctx_train));
    if (n_prompt >= n_ctx) {
        bridge.print(bridge.stderr, "paris-zig: the prompt's {d} tokens fill the model's context of {d}\n", .{ n_prompt, n_ctx });
        return 1;
    }
    const ctx = check("realm_context_new", realm.realm_context_new(model, n_ctx));
    const d = info.n_embd;
    var sampler = sample.Sampler.init(params, candidates[0..sample.scratchSize(params, info.n_vocab)]);

    // prefill: the whole prompt through each layer in one call
    _ = check("realm_embed_tokens", realm.realm_embed_tokens(model, &ids, n_prompt, &hidden, @as(usize, n_prompt) * d));
    var layer: u32 = 0;
    while (layer < info.n_layer) : (layer += 1)
        _ = check("realm_forward_layer", realm.realm_forward_layer(ctx, layer, &hidden, n_prompt, 0));
    const last = hidden[@as(usize, n_prompt - 1) * d ..];
    _ = check("realm_compute_logits", realm.realm_compute_logits(model, last.ptr, &logits, info.n_vocab));

    // decode, streaming whole UTF-8 characters as they complete
    var pending: [256]u8 = undefined;
    var n_pending: usize = 0;
    var position: u32 = n_prompt;
    var step: u32 = 0;
    var ended = false;
    while (step < max_tokens and position < n_ctx) : (step += 1) {
        var token = sampler.sample(logits[0..info.n_vocab]);
        sampler.accept(token);
        if (token == info.eos_id or token == im_end) {
            ended = true;
            break;
        }
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
    if (!ended) bridge.print(bridge.stderr, "paris-zig: [stopped after {d} tokens; -n N for more]\n", .{step});
    _ = realm.realm_context_free(ctx);
    _ = realm.realm_model_close(model);
    return 0;
}
