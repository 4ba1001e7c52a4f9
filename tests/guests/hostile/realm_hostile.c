/* realm_hostile: exports thin wrappers over the realm ABI so a test can hand it forged handles and
 * out-of-range numbers; every wrapper returns the realm function's result unchanged.
 *
 * Buffers are the guest's own (static), sized for the synthetic test model (n_embd 256) and at most
 * MAX_TOKENS tokens, so every pointer the host sees is valid: only handles and numbers are hostile.
 * Strings (model names, text) are written by the test into `text_buffer()`.
 *
 * Run as a command, `realm_hostile` opens the model named by its first argument and prints one line
 * per hostile call, "NAME CODE", for the CLI test.
 */
#include <bridge.h>
#include <realm.h>
#include <stdio.h>
#include <string.h>

#define MAX_TOKENS 16
#define MAX_EMBD 256

static char text[256];
static uint32_t ids[MAX_TOKENS];
static float hidden[MAX_TOKENS * MAX_EMBD];
static float logits_out[4096];
static char bytes_out[1024];
static realm_model_info info;

BRIDGE_EXPORT(text_buffer) char *text_buffer(void) { return text; }

BRIDGE_EXPORT(open_model) int32_t open_model(size_t name_len) { return realm_model_open(text, name_len); }

/* Field `field` of realm_model_info (0 n_vocab ... 8 eos_id), or the error code. */
BRIDGE_EXPORT(info_field) int64_t info_field(int32_t model, uint32_t field) {
    int32_t got = realm_model_info_get(model, &info, sizeof info);
    if (got < 0) return got;
    return ((const uint32_t *)&info)[field];
}

BRIDGE_EXPORT(model_info) int32_t model_info(int32_t model) { return realm_model_info_get(model, &info, sizeof info); }

BRIDGE_EXPORT(close_model) int32_t close_model(int32_t model) { return realm_model_close(model); }

BRIDGE_EXPORT(meta) int32_t meta(int32_t model, size_t key_len) {
    return realm_model_meta(model, text, key_len, bytes_out, sizeof bytes_out);
}

BRIDGE_EXPORT(tokenize) int32_t tokenize(int32_t model, size_t text_len) {
    return realm_tokenize(model, text, text_len, ids, MAX_TOKENS);
}

BRIDGE_EXPORT(detokenize) int32_t detokenize(int32_t model, uint32_t id, uint32_t n_ids) {
    for (uint32_t i = 0; i < n_ids && i < MAX_TOKENS; i++) ids[i] = id;
    return realm_detokenize(model, ids, n_ids > MAX_TOKENS ? MAX_TOKENS : n_ids, bytes_out, sizeof bytes_out);
}

BRIDGE_EXPORT(context_new) int32_t context_new(int32_t model, uint32_t n_ctx) { return realm_context_new(model, n_ctx); }

BRIDGE_EXPORT(context_free) int32_t context_free(int32_t context) { return realm_context_free(context); }

/* Embeds n_ids copies of `id` into the hidden buffer. */
BRIDGE_EXPORT(embed) int32_t embed(int32_t model, uint32_t id, uint32_t n_ids) {
    for (uint32_t i = 0; i < n_ids && i < MAX_TOKENS; i++) ids[i] = id;
    return realm_embed_tokens(model, ids, n_ids > MAX_TOKENS ? MAX_TOKENS : n_ids, hidden,
                              sizeof hidden / sizeof hidden[0]);
}

BRIDGE_EXPORT(forward) int32_t forward(int32_t context, uint32_t layer, uint32_t n_tokens, uint32_t position) {
    return realm_forward_layer(context, layer, hidden, n_tokens > MAX_TOKENS ? MAX_TOKENS : n_tokens, position);
}

BRIDGE_EXPORT(logits) int32_t logits(int32_t model) {
    return realm_compute_logits(model, hidden, logits_out, sizeof logits_out / sizeof logits_out[0]);
}

BRIDGE_EXPORT(tensor) int32_t tensor(int32_t model, size_t name_len) {
    return realm_get_tensor(model, text, name_len, hidden, sizeof hidden / sizeof hidden[0]);
}

/* The first float of the hidden buffer's token `token`, bit for bit, to see whether a call wrote it. */
BRIDGE_EXPORT(hidden_bits) uint32_t hidden_bits(uint32_t token) {
    uint32_t bits;
    memcpy(&bits, &hidden[(token % MAX_TOKENS) * MAX_EMBD], sizeof bits);
    return bits;
}

static void report(const char *name, int32_t code) { printf("%s %d\n", name, (int)code); }

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "synthetic";
    strcpy(text, name);
    int32_t m = open_model(strlen(name));
    report("open", m);
    if (m < 0) return 1;
    int32_t c = context_new(m, 8);
    report("context", c);
    report("info-forged-0", model_info(0));
    report("info-forged-minus-1", model_info(-1));
    report("info-forged-max", model_info(INT32_MAX));
    report("info-context-handle", model_info(c));
    report("free-model-handle", context_free(m));
    report("forward-layer-out-of-range", forward(c, 1000, 1, 0));
    report("forward-gap", forward(c, 0, 1, 3));
    report("forward-past-context", forward(c, 0, 1, 8));
    report("context-0", context_new(m, 0));
    report("context-huge", context_new(m, UINT32_MAX));
    report("embed-bad-id", embed(m, UINT32_MAX, 1));
    report("detokenize-bad-id", detokenize(m, UINT32_MAX, 1));
    strcpy(text, "no-such-model");
    report("open-unknown", open_model(strlen(text)));
    report("free", context_free(c));
    report("free-twice", context_free(c));
    report("close", close_model(m));
    report("info-closed", model_info(m));
    printf("done\n");
    return 0;
}
