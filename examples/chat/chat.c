/* chat: asks whichever model the host offers first, in that model's own chat format, and streams its
 * greedy answer.
 *
 * The prompt comes from the model's GGUF chat template (realm_chat_apply), so the same guest talks to
 * SmolLM2, Gemma, Qwen or Llama. A base model without a template (Gemma 3 270M) continues the text as
 * given. Generation stops at the end-of-generation tokens the model has (EOS, EOT, and single-token turn
 * ends such as <end_of_turn> or <|im_end|>) or after --max-tokens.
 *
 *   python -m bridge run examples/chat --model gemma=PATH.gguf -- [OPTIONS] Your question?
 *
 * Options (realm_sample.h): -n/--max-tokens N (default 128), --temp T (0, greedy, by default), --top-k,
 * --top-p, --min-p, --repeat-penalty, --seed.
 */
#include <realm.h>
#include <realm_sample.h>
#include <realm_text.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_TOKENS 128
#define MAX_STOPS 16

static void fail(const char *what, int32_t code) {
    fprintf(stderr, "chat: %s failed with code %d\n", what, (int)code);
    exit(1);
}

static void *checked_malloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) fail("malloc", 0);
    return p;
}

/* Tokenizes text (the host adds the model's BOS when it wants one), growing the buffer on demand. */
static uint32_t *tokenize(int32_t model, const char *text, size_t len, int32_t *count) {
    uint32_t cap = 256;
    uint32_t *ids = checked_malloc(cap * sizeof *ids);
    int32_t n = realm_tokenize(model, text, len, ids, cap);
    if (n > (int32_t)cap) {
        cap = (uint32_t)n;
        free(ids);
        ids = checked_malloc(cap * sizeof *ids);
        n = realm_tokenize(model, text, len, ids, cap);
    }
    if (n < 0) fail("realm_tokenize", n);
    *count = n;
    return ids;
}

/* The question as a JSON string's contents: quotes, backslashes and control bytes escaped. */
static char *json_escape(const char *s) {
    char *out = checked_malloc(strlen(s) * 6 + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            *o++ = '\\';
            *o++ = (char)*p;
        } else if (*p < 0x20) {
            o += sprintf(o, "\\u%04x", *p);
        } else {
            *o++ = (char)*p;
        }
    }
    *o = 0;
    return out;
}

/* The prompt: the model's chat template over one user message, or the question itself without one. */
static char *make_prompt(int32_t model, const char *question, size_t *len) {
    char *content = json_escape(question);
    size_t messages_len = strlen(content) + 64;
    char *messages = checked_malloc(messages_len);
    snprintf(messages, messages_len, "[{\"role\": \"user\", \"content\": \"%s\"}]", content);
    free(content);
    int32_t need = realm_chat_apply(model, messages, strlen(messages), 1, NULL, 0);
    if (need == REALM_ENOENT) {
        fprintf(stderr, "chat: the model has no chat template; it continues the text as given\n");
        free(messages);
        *len = strlen(question);
        char *copy = checked_malloc(*len + 1);
        memcpy(copy, question, *len + 1);
        return copy;
    }
    if (need < 0) fail("realm_chat_apply", need);
    char *prompt = checked_malloc((size_t)need + 1);
    int32_t got = realm_chat_apply(model, messages, strlen(messages), 1, prompt, (size_t)need);
    if (got != need) fail("realm_chat_apply", got);
    prompt[need] = 0;
    free(messages);
    *len = (size_t)need;
    return prompt;
}

/* A metadata value that is a token id, or -1. */
static int64_t meta_id(int32_t model, const char *key) {
    char buf[32];
    int32_t n = realm_model_meta(model, key, strlen(key), buf, sizeof buf - 1);
    if (n <= 0 || n >= (int32_t)sizeof buf) return -1;
    buf[n] = 0;
    return strtoll(buf, NULL, 10);
}

/* The ids that end a reply: EOS, EOT/EOM when the file names them, and turn-end markers that are one
 * token of this vocabulary. */
static int stop_ids(int32_t model, const realm_model_info *info, uint32_t *stops) {
    int n = 0;
    stops[n++] = info->eos_id;
    const char *keys[] = {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        int64_t id = meta_id(model, keys[i]);
        if (id >= 0 && id < info->n_vocab) stops[n++] = (uint32_t)id;
    }
    const char *markers[] = {"<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>", "<|endoftext|>"};
    for (size_t i = 0; i < sizeof markers / sizeof *markers && n < MAX_STOPS; i++) {
        int32_t count;
        uint32_t *ids = tokenize(model, markers[i], strlen(markers[i]), &count);
        int skip = count > 0 && ids[0] == info->bos_id; /* the BOS the host may add */
        if (count - skip == 1) stops[n++] = ids[skip];
        free(ids);
    }
    return n;
}

/* Every layer over n tokens of hidden at position, then the logits of the last one. */
static void forward(int32_t model, int32_t ctx, const realm_model_info *info, float *hidden, uint32_t n,
                    uint32_t position, float *logits) {
    for (uint32_t layer = 0; layer < info->n_layer; layer++) {
        int32_t rc = realm_forward_layer(ctx, layer, hidden, n, position);
        if (rc < 0) fail("realm_forward_layer", rc);
    }
    int32_t rc = realm_compute_logits(model, hidden + (size_t)(n - 1) * info->n_embd, logits, info->n_vocab);
    if (rc < 0) fail("realm_compute_logits", rc);
}

int main(int argc, char **argv) {
    long max_tokens = DEFAULT_MAX_TOKENS;
    realm_sampler_params sampling = realm_sampler_defaults();
    int first_word = realm_sample_args(argc, argv, &sampling, &max_tokens);
    if (first_word < 0) return 2;
    /* every remaining word is the question */
    char *question = realm_join_words(argc, argv, first_word, "What is the capital of France?");
    if (!question) fail("malloc", 0);

    char name[256];
    int32_t name_len = realm_model_name(0, name, sizeof name - 1);
    if (name_len == REALM_ENOENT) fail("finding a model (pass --model NAME=PATH.gguf)", name_len);
    if (name_len < 0 || name_len >= (int32_t)sizeof name) fail("realm_model_name", name_len);
    int32_t model = realm_model_open(name, (size_t)name_len);
    if (model < 0) fail("realm_model_open", model);
    realm_model_info info;
    int32_t got = realm_model_info_get(model, &info, sizeof info);
    if (got < 0) fail("realm_model_info_get", got);

    size_t prompt_len;
    char *prompt = make_prompt(model, question, &prompt_len);
    int32_t n_prompt;
    uint32_t *ids = tokenize(model, prompt, prompt_len, &n_prompt);
    /* a template that writes the BOS itself, and a host that adds one too: keep one */
    uint32_t *start = ids;
    if (n_prompt >= 2 && ids[0] == info.bos_id && ids[1] == info.bos_id) {
        start++;
        n_prompt--;
    }
    if (n_prompt == 0) fail("tokenizing the prompt", 0);
    uint32_t stops[MAX_STOPS];
    int n_stops = stop_ids(model, &info, stops);

    uint64_t want = (uint64_t)n_prompt + (uint64_t)max_tokens;
    uint32_t n_ctx = want > info.n_ctx_train ? info.n_ctx_train : (uint32_t)want;
    if ((uint32_t)n_prompt >= n_ctx) {
        fprintf(stderr, "chat: the prompt's %d tokens fill the model's context of %u\n", (int)n_prompt, n_ctx);
        return 1;
    }
    int32_t ctx = realm_context_new(model, n_ctx);
    if (ctx < 0) fail("realm_context_new", ctx);
    float *hidden = checked_malloc((size_t)n_prompt * info.n_embd * sizeof *hidden);
    float *logits = checked_malloc((size_t)info.n_vocab * sizeof *logits);
    /* the sampler's candidates: none when greedy, so greedy guests stay as small as before */
    realm_candidate *scratch = checked_malloc((size_t)realm_sampler_scratch(sampling, info.n_vocab) * sizeof *scratch + 1);
    realm_sampler sampler;
    realm_sampler_init(&sampler, sampling, scratch, info.n_vocab);

    /* prefill: the whole prompt through each layer in one call */
    int32_t rc = realm_embed_tokens(model, start, (uint32_t)n_prompt, hidden, (size_t)n_prompt * info.n_embd);
    if (rc < 0) fail("realm_embed_tokens", rc);
    forward(model, ctx, &info, hidden, (uint32_t)n_prompt, 0, logits);

    /* decode greedily, streaming whole UTF-8 characters as they complete */
    unsigned char pending[512];
    size_t n_pending = 0;
    uint32_t position = (uint32_t)n_prompt;
    long generated = 0;
    int stopped = 0;
    while (generated < max_tokens && position < n_ctx) {
        uint32_t token = realm_sample(&sampler, logits, info.n_vocab);
        realm_sampler_accept(&sampler, token);
        for (int i = 0; i < n_stops; i++) stopped |= token == stops[i];
        if (stopped) break;
        int32_t len = realm_detokenize(model, &token, 1, (char *)pending + n_pending, sizeof pending - n_pending);
        if (len < 0) fail("realm_detokenize", len);
        if ((size_t)len <= sizeof pending - n_pending) n_pending += (size_t)len;
        size_t ready = realm_utf8_complete(pending, n_pending);
        fwrite(pending, 1, ready, stdout);
        fflush(stdout);
        memmove(pending, pending + ready, n_pending - ready);
        n_pending -= ready;
        generated++;

        rc = realm_embed_tokens(model, &token, 1, hidden, info.n_embd);
        if (rc < 0) fail("realm_embed_tokens", rc);
        forward(model, ctx, &info, hidden, 1, position, logits);
        position++;
    }
    fwrite(pending, 1, n_pending, stdout);
    printf("\n");
    if (!stopped) fprintf(stderr, "chat: [stopped after %ld tokens; -n N for more]\n", generated);

    realm_context_free(ctx);
    realm_model_close(model);
    free(prompt);
    free(ids);
    free(hidden);
    free(logits);
    free(scratch);
    free(question);
    return 0;
}
