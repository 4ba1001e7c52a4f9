/* realm_abi: exercises the realm ABI using nothing but guest/include/realm.h.
 *
 * Prints "ok NAME" or "FAIL NAME" per check, then the model info and a tensor checksum for the host
 * side of the test to compare; exits with the number of failures. With the argument "badptr" it
 * hands realm_forward_layer a pointer outside its memory instead, which must trap.
 */
#include <realm.h>
#include <bridge.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;
#define CHECK(cond, name)                                     \
    do {                                                      \
        if (cond) {                                           \
            printf("ok %s\n", name);                          \
        } else {                                              \
            printf("FAIL %s (line %d)\n", name, __LINE__);    \
            failures++;                                       \
        }                                                     \
    } while (0)

static const char *model_name = "smollm2";

BRIDGE_EXPORT(open_model) int32_t open_model(void) {
    return realm_model_open(model_name, strlen(model_name));
}

BRIDGE_EXPORT(info_of) int32_t info_of(int32_t model) {
    realm_model_info info;
    return realm_model_info_get(model, &info, sizeof info);
}

int main(int argc, char **argv) {
    if (argc > 2) model_name = argv[2];
    int32_t m = open_model();
    if (m < 0) {
        printf("FAIL open %d\n", (int)m);
        return 1;
    }
    realm_model_info info;
    realm_model_info_get(m, &info, sizeof info);
    int32_t c = realm_context_new(m, 8);
    float *hidden = calloc((size_t)info.n_embd * 2, sizeof *hidden);

    if (argc > 1 && strcmp(argv[1], "badptr") == 0) {
        printf("before\n");
        fflush(stdout);
        realm_forward_layer(c, 0, (float *)(uintptr_t)0xfffffff0u, 1, 0);
        printf("not reached\n");
        return 0;
    }

    CHECK(realm_model_open("nope", 4) == REALM_ENOENT, "open unknown model");
    CHECK(m > 0, "open");

    /* variable-size output: too small a capacity returns the size and writes nothing */
    realm_model_info probe;
    memset(&probe, 0xAB, sizeof probe);
    CHECK(realm_model_info_get(m, &probe, 4) == (int32_t)sizeof probe && probe.n_vocab == 0xABABABABu,
          "info short capacity");
    CHECK(realm_model_info_get(m, &probe, sizeof probe) == (int32_t)sizeof probe && probe.n_vocab == info.n_vocab,
          "info");
    CHECK(realm_model_info_get(12345, &probe, sizeof probe) == REALM_EBADF, "info bad handle");
    printf("info %u %u %u %u %u %u %u %u %u\n", info.n_vocab, info.n_embd, info.n_layer, info.n_head,
           info.n_head_kv, info.n_ff, info.n_ctx_train, info.bos_id, info.eos_id);

    char buf[64];
    memset(buf, 0, sizeof buf);
    CHECK(realm_model_meta(m, "general.architecture", 20, buf, 2) == 5 && buf[0] == 0, "meta short capacity");
    CHECK(realm_model_meta(m, "general.architecture", 20, buf, sizeof buf) == 5 && memcmp(buf, "llama", 5) == 0,
          "meta");
    CHECK(realm_model_meta(m, "no.such.key", 11, buf, sizeof buf) == REALM_ENOENT, "meta unknown key");

    uint32_t ids[16];
    int32_t n = realm_tokenize(m, "Hello world", 11, ids, 0);
    CHECK(n > 0, "tokenize counts without room");
    CHECK(realm_tokenize(m, "Hello world", 11, ids, 16) == n, "tokenize");
    CHECK(realm_tokenize(m, "\xff\xfe", 2, ids, 16) == REALM_EINVAL, "tokenize invalid utf-8");
    int32_t len = realm_detokenize(m, ids, (uint32_t)n, buf, sizeof buf);
    CHECK(len == 11 && memcmp(buf, "Hello world", 11) == 0, "detokenize round trip");
    uint32_t bad_id = info.n_vocab;
    CHECK(realm_detokenize(m, &bad_id, 1, buf, sizeof buf) == REALM_EINVAL, "detokenize bad id");

    /* the models offered (ABI 1.2): smollm2 among them, needed-size rule, ENOENT past the last */
    int32_t found = 0;
    uint32_t index = 0;
    for (;; index++) {
        int32_t got_name = realm_model_name(index, buf, sizeof buf);
        if (got_name == REALM_ENOENT) break;
        CHECK(got_name > 0 && got_name <= (int32_t)sizeof buf, "model name");
        if (got_name == 7 && memcmp(buf, "smollm2", 7) == 0) found = 1;
    }
    CHECK(REALM_ABI_MINOR_VERSION >= 2 && found && index >= 1, "model names");
    memset(buf, 0, sizeof buf);
    CHECK(realm_model_name(0, buf, 1) > 1 && buf[0] == 0, "model name short capacity");
    CHECK(realm_model_name(0xFFFFFFFFu, buf, sizeof buf) == REALM_ENOENT, "model name past the last");

    /* chat formatting (ABI 1.1): the model's own template, needed-size rule, bad JSON */
    const char *messages = "[{\"role\": \"user\", \"content\": \"Hi\"}]";
    int32_t need = realm_chat_apply(m, messages, strlen(messages), 1, buf, 0);
    CHECK(REALM_ABI_MINOR_VERSION >= 1 && need > 0, "chat counts without room");
    char *prompt = calloc((size_t)need + 1, 1);
    CHECK(realm_chat_apply(m, messages, strlen(messages), 1, prompt, (size_t)need) == need, "chat");
    printf("chat %s|end\n", prompt);
    CHECK(realm_chat_apply(m, "[{", 2, 1, prompt, (size_t)need) == REALM_EINVAL, "chat bad json");
    CHECK(realm_chat_apply(m, "{}", 2, 1, prompt, (size_t)need) == REALM_EINVAL, "chat not an array");
    CHECK(realm_chat_apply(c, messages, strlen(messages), 1, prompt, (size_t)need) == REALM_EBADF,
          "chat with a context handle");
    free(prompt);

    CHECK(realm_context_new(m, 0) == REALM_EINVAL, "context of 0");
    CHECK(realm_context_new(m, info.n_ctx_train + 1) == REALM_EINVAL, "context too large");
    CHECK(realm_context_new(c, 8) == REALM_EBADF, "context from a context handle");
    CHECK(c > 0 && c != m, "context");

    CHECK(realm_embed_tokens(m, ids, 1, hidden, 3) == (int32_t)info.n_embd && hidden[0] == 0.0f,
          "embed short capacity");
    CHECK(realm_embed_tokens(m, &bad_id, 1, hidden, info.n_embd) == REALM_EINVAL, "embed bad id");
    CHECK(realm_embed_tokens(m, ids, 0, hidden, info.n_embd) == REALM_EINVAL, "embed no ids");
    CHECK(realm_embed_tokens(m, ids, 1, hidden, info.n_embd) == (int32_t)info.n_embd && hidden[0] != 0.0f,
          "embed");

    CHECK(realm_forward_layer(m, 0, hidden, 1, 0) == REALM_EBADF, "forward with a model handle");
    CHECK(realm_forward_layer(c, info.n_layer, hidden, 1, 0) == REALM_EINVAL, "forward layer out of range");
    CHECK(realm_forward_layer(c, 0, hidden, 0, 0) == REALM_EINVAL, "forward no tokens");
    CHECK(realm_forward_layer(c, 0, hidden, 1, 8) == REALM_EINVAL, "forward past the context");
    CHECK(realm_forward_layer(c, 0, hidden, 1, 3) == REALM_EINVAL, "forward leaving a gap");
    CHECK(realm_forward_layer(c, 0, hidden, 1, 0) == 0, "forward");

    float *logits = malloc((size_t)info.n_vocab * sizeof *logits);
    CHECK(realm_compute_logits(m, hidden, logits, 10) == (int32_t)info.n_vocab, "logits short capacity");
    CHECK(realm_compute_logits(m, hidden, logits, info.n_vocab) == (int32_t)info.n_vocab, "logits");

    int32_t count = realm_get_tensor(m, "output_norm.weight", 18, hidden, 1);
    CHECK(count == (int32_t)info.n_embd, "tensor short capacity");
    CHECK(realm_get_tensor(m, "output_norm.weight", 18, hidden, info.n_embd) == count, "tensor");
    double sum = 0;
    for (int32_t i = 0; i < count; i++) sum += hidden[i];
    printf("output_norm sum %.6f\n", sum);
    CHECK(realm_get_tensor(m, "no.such.tensor", 14, hidden, info.n_embd) == REALM_ENOENT, "tensor unknown");

    CHECK(realm_log(1, "hello from the guest", 20) == 0, "log");

    CHECK(realm_context_free(c) == 0, "context free");
    CHECK(realm_context_free(c) == REALM_EBADF, "context free twice");
    CHECK(realm_model_close(m) == 0, "model close");
    CHECK(realm_model_close(m) == REALM_EBADF, "model close twice");
    CHECK(realm_model_info_get(m, &probe, sizeof probe) == REALM_EBADF, "closed handle");

    printf("failures %d\n", failures);
    free(hidden);
    free(logits);
    return failures;
}
