/* realm_limits: thin exports over realm.h, so a test can drive each realm function with large inputs.
 *
 * The host side (tests/test_realm_limits.py) allocates buffers in this guest's memory with `alloc`,
 * fills them through its view of that memory, and calls the pass-throughs below; `cycles` runs many
 * context new+free cycles without leaving the guest.
 */
#include <realm.h>
#include <bridge.h>
#include <stdlib.h>
#include <string.h>

BRIDGE_EXPORT(alloc) void *alloc(size_t n) { return calloc(n ? n : 1, 1); }
BRIDGE_EXPORT(release) void release(void *p) { free(p); }

BRIDGE_EXPORT(open_model) int32_t open_model(const char *name, size_t len) { return realm_model_open(name, len); }
BRIDGE_EXPORT(close_model) int32_t close_model(int32_t m) { return realm_model_close(m); }
BRIDGE_EXPORT(context_new) int32_t context_new(int32_t m, uint32_t n_ctx) { return realm_context_new(m, n_ctx); }
BRIDGE_EXPORT(context_free) int32_t context_free(int32_t c) { return realm_context_free(c); }

BRIDGE_EXPORT(tokenize) int32_t tokenize(int32_t m, const char *text, size_t len, uint32_t *ids, uint32_t cap) {
    return realm_tokenize(m, text, len, ids, cap);
}

BRIDGE_EXPORT(detokenize) int32_t detokenize(int32_t m, const uint32_t *ids, uint32_t n, char *out, size_t cap) {
    return realm_detokenize(m, ids, n, out, cap);
}

BRIDGE_EXPORT(embed) int32_t embed(int32_t m, const uint32_t *ids, uint32_t n, float *out, size_t len) {
    return realm_embed_tokens(m, ids, n, out, len);
}

BRIDGE_EXPORT(forward) int32_t forward(int32_t c, uint32_t layer, float *hidden, uint32_t n, uint32_t position) {
    return realm_forward_layer(c, layer, hidden, n, position);
}

BRIDGE_EXPORT(tensor) int32_t tensor(int32_t m, const char *name, size_t len, float *out, size_t out_len) {
    return realm_get_tensor(m, name, len, out, out_len);
}

BRIDGE_EXPORT(log_message) int32_t log_message(int32_t level, const char *msg, size_t len) {
    return realm_log(level, msg, len);
}

BRIDGE_EXPORT(meta) int32_t meta(int32_t m, const char *key, size_t len, char *out, size_t cap) {
    return realm_model_meta(m, key, len, out, cap);
}

/* `count` cycles of context_new(n_ctx), one token through layer 0 (when `touch`), context_free:
 * 0, or the first error code. */
BRIDGE_EXPORT(cycles) int32_t cycles(int32_t m, uint32_t n_ctx, uint32_t count, int32_t touch) {
    realm_model_info info;
    if (realm_model_info_get(m, &info, sizeof info) < 0) return -100;
    float *hidden = calloc(info.n_embd, sizeof *hidden);
    uint32_t id = 1;
    int32_t rc = 0;
    for (uint32_t i = 0; i < count && rc == 0; i++) {
        int32_t c = realm_context_new(m, n_ctx);
        if (c < 0) {
            rc = c;
            break;
        }
        if (touch) {
            rc = realm_embed_tokens(m, &id, 1, hidden, info.n_embd) < 0 ? -101 : 0;
            if (rc == 0) rc = realm_forward_layer(c, 0, hidden, 1, 0);
        }
        if (realm_context_free(c) != 0) rc = -102;
    }
    free(hidden);
    return rc;
}

int main(void) { return 0; }
