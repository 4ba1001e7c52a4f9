//! realm_sample.zig: choosing the next token from a row of logits, in a Zig guest: the same choices as
//! guest/include/realm_sample.h, so a seed gives a C guest and a Zig guest the same tokens.
//!
//! Greedy by default; with a temperature above 0, sampling from the softmax after, in order: the
//! repetition penalty on the last tokens chosen, top-k, then top-p (nucleus) and min-p over what is
//! left. The random numbers come from a seeded xorshift64* generator.
//!
//!   const sample = @import("realm_sample");
//!   var s = sample.Sampler.init(params, scratch[0..sample.scratchSize(params, n_vocab)]);
//!   const token = s.sample(logits[0..n_vocab]); // the penalty changes the logits in place
//!   s.accept(token); // for the repetition penalty
const std = @import("std");

pub const Params = struct {
    temperature: f32 = 0.0, // 0: greedy (the default)
    top_k: i32 = 40, // keep the k most likely tokens; 0: all
    top_p: f32 = 0.95, // keep the fewest tokens whose probabilities sum to top_p; 1: all
    min_p: f32 = 0.05, // drop tokens less likely than min_p times the likeliest; 0: none
    repeat_penalty: f32 = 1.0, // divide the logits of recent tokens by it (multiply when negative); 1: none
    repeat_last_n: u32 = 64, // how many recent tokens the penalty looks at (at most max_recent)
    seed: u64 = 42,
};

pub const max_recent = 256;

pub const Candidate = extern struct {
    index: u32,
    value: f32, // a logit, then a probability
};

/// How many candidates of scratch `sample` needs: none when greedy, top_k with a top-k, else n_vocab.
pub fn scratchSize(params: Params, n_vocab: u32) u32 {
    if (!(params.temperature > 0.0)) return 0;
    return if (params.top_k > 0 and @as(u32, @intCast(params.top_k)) < n_vocab) @intCast(params.top_k) else n_vocab;
}

fn before(a: Candidate, b: Candidate) bool {
    return a.value > b.value or (a.value == b.value and a.index < b.index);
}

/// Largest first, ties by index; a heap sort, as realm_sample.h (no recursion).
fn sortCandidates(c: []Candidate) void {
    const n = c.len;
    var start = n / 2;
    while (start > 0) {
        start -= 1;
        siftDown(c, start, n);
    }
    var end = n;
    while (end > 1) {
        end -= 1;
        std.mem.swap(Candidate, &c[0], &c[end]);
        siftDown(c, 0, end);
    }
}

fn siftDown(c: []Candidate, first: usize, end: usize) void {
    var i = first;
    while (true) {
        var child = 2 * i + 1;
        if (child >= end) return;
        if (child + 1 < end and before(c[child], c[child + 1])) child += 1;
        if (!before(c[i], c[child])) return;
        std.mem.swap(Candidate, &c[i], &c[child]);
        i = child;
    }
}

pub const Sampler = struct {
    params: Params,
    state: u64, // the generator's
    candidates: []Candidate, // scratch: scratchSize(params, n_vocab) entries, the caller's
    recent: [max_recent]u32 = undefined,
    n_recent: u32 = 0,
    next_recent: u32 = 0,

    pub fn init(params: Params, scratch: []Candidate) Sampler {
        var p = params;
        if (p.repeat_last_n > max_recent) p.repeat_last_n = max_recent;
        // xorshift's state must not be 0
        return .{ .params = p, .state = if (p.seed != 0) p.seed else 0x9E3779B97F4A7C15, .candidates = scratch };
    }

    /// A uniform float in [0, 1) from xorshift64*.
    pub fn uniform(s: *Sampler) f32 {
        var x = s.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.state = x;
        const bits: u64 = (x *% 0x2545F4914F6CDD1D) >> 40;
        return @as(f32, @floatFromInt(bits)) / @as(f32, 1 << 24);
    }

    /// Records a chosen token, for the repetition penalty.
    pub fn accept(s: *Sampler, token: u32) void {
        if (s.params.repeat_last_n == 0) return;
        s.recent[s.next_recent] = token;
        s.next_recent = (s.next_recent + 1) % s.params.repeat_last_n;
        if (s.n_recent < s.params.repeat_last_n) s.n_recent += 1;
    }

    /// The next token for these logits (the penalty changes them in place).
    pub fn sample(s: *Sampler, logits: []f32) u32 {
        const p = s.params;
        const n_vocab: u32 = @intCast(logits.len);
        if (p.repeat_penalty != 1.0 and p.repeat_penalty > 0.0) {
            for (s.recent[0..s.n_recent]) |t| {
                if (t < n_vocab) logits[t] = if (logits[t] > 0) logits[t] / p.repeat_penalty else logits[t] * p.repeat_penalty;
            }
        }
        var best: u32 = 0;
        for (logits, 0..) |x, i| {
            if (x > logits[best]) best = @intCast(i);
        }
        if (!(p.temperature > 0.0)) return best;

        // top-k: keep the k largest in c[0..n), sorted, by insertion (k small), or sort them all
        const c = s.candidates;
        const k = scratchSize(p, n_vocab);
        var n: u32 = 0;
        if (k < n_vocab) {
            for (logits, 0..) |value, i| {
                const x = Candidate{ .index = @intCast(i), .value = value };
                if (n == k and !before(x, c[k - 1])) continue;
                var j: u32 = if (n < k) n else k - 1;
                if (n < k) n += 1;
                while (j > 0 and before(x, c[j - 1])) : (j -= 1) c[j] = c[j - 1];
                c[j] = x;
            }
        } else {
            for (logits, 0..) |value, i| c[i] = .{ .index = @intCast(i), .value = value };
            n = n_vocab;
            sortCandidates(c[0..n]);
        }
        // softmax at the temperature, over what is left
        const top = c[0].value;
        var sum: f32 = 0.0;
        for (c[0..n]) |*x| {
            x.value = @exp((x.value - top) / p.temperature);
            sum += x.value;
        }
        // min-p, then top-p: cut the sorted tail
        var keep = n;
        var cumulative: f32 = 0.0;
        for (c[0..n], 0..) |x, i| {
            const prob = x.value / sum;
            if (i > 0 and prob < p.min_p * (c[0].value / sum)) {
                keep = @intCast(i);
                break;
            }
            cumulative += prob;
            if (cumulative >= p.top_p) {
                keep = @intCast(i + 1);
                break;
            }
        }
        var total: f32 = 0.0;
        for (c[0..keep]) |x| total += x.value;
        var r = s.uniform() * total;
        for (c[0..keep]) |x| {
            r -= x.value;
            if (r < 0.0) return x.index;
        }
        return c[keep - 1].index;
    }
};

/// What `parseArgs` found: where the words of the prompt start, or what is wrong with the options.
pub const Parsed = union(enum) {
    first_word: usize,
    unknown: []const u8, // an option it does not know
    no_value: []const u8, // an option last, without its value
    bad_value: [2][]const u8, // an option and its value, out of range or not a number
};

const options = [_][]const u8{ "-n", "--max-tokens", "--temp", "--top-k", "--top-p", "--min-p", "--repeat-penalty", "--seed" };

/// The generation options the examples take before the words of the prompt, as realm_sample_args:
/// -n/--max-tokens N, --temp T, --top-k K, --top-p P, --min-p M, --repeat-penalty R, --seed S; "--" ends
/// them. `args` excludes the program's name.
pub fn parseArgs(args: []const []const u8, params: *Params, max_tokens: *u32) Parsed {
    var i: usize = 0;
    while (i < args.len and args[i].len > 1 and args[i][0] == '-') : (i += 2) {
        const opt = args[i];
        if (std.mem.eql(u8, opt, "--")) return .{ .first_word = i + 1 };
        for (options) |name| {
            if (std.mem.eql(u8, opt, name)) break;
        } else return .{ .unknown = opt };
        if (i + 1 >= args.len) return .{ .no_value = opt };
        const value = args[i + 1];
        if (!setOption(opt, value, params, max_tokens)) return .{ .bad_value = .{ opt, value } };
    }
    return .{ .first_word = i };
}

fn setOption(opt: []const u8, value: []const u8, params: *Params, max_tokens: *u32) bool {
    if (std.mem.eql(u8, opt, "--seed")) {
        params.seed = std.fmt.parseInt(u64, value, 10) catch return false;
        return true;
    }
    const number = std.fmt.parseFloat(f64, value) catch return false;
    const whole = number == @trunc(number);
    if (std.mem.eql(u8, opt, "-n") or std.mem.eql(u8, opt, "--max-tokens")) {
        if (!(number >= 1 and number <= (1 << 20) and whole)) return false;
        max_tokens.* = @intFromFloat(number);
    } else if (std.mem.eql(u8, opt, "--temp")) {
        if (!(number >= 0 and number <= 100)) return false;
        params.temperature = @floatCast(number);
    } else if (std.mem.eql(u8, opt, "--top-k")) {
        if (!(number >= 0 and number <= 1e9 and whole)) return false;
        params.top_k = @intFromFloat(number);
    } else if (std.mem.eql(u8, opt, "--top-p")) {
        if (!(number > 0 and number <= 1)) return false;
        params.top_p = @floatCast(number);
    } else if (std.mem.eql(u8, opt, "--min-p")) {
        if (!(number >= 0 and number <= 1)) return false;
        params.min_p = @floatCast(number);
    } else {
        if (!(number > 0 and number <= 100)) return false;
        params.repeat_penalty = @floatCast(number);
    }
    return true;
}
