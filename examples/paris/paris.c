/* paris: asks a model a question and streams its greedy answer.
 *
 * The guest drives the whole generation loop (chat prompt, tokenize, prefill, decode, greedy
 * sampling, streaming UTF-8 to stdout) and calls realm_* host functions for every heavy step. The
 * model's weights stay on the host; this guest's memory holds only token ids, one batch of hidden
 * states and one row of logits.
 *
 *   python -m bridge run examples/paris [-- [OPTIONS] Your question?]
 *
 * Every word after the options is part of the question. Options (realm_sample.h): -n/--max-tokens N
 * caps the answer (default 64; stderr says so when the cap cut it); --temp T samples instead of taking
 * the likeliest token (greedy, the default), with --top-k, --top-p, --min-p, --repeat-penalty and
 * --seed.
 */
#include <realm.h>
#include <realm_sample.h>
#include <realm_text.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODEL_NAME "smollm2"
#define DEFAULT_MAX_TOKENS 64

static void fail(const char *what, int32_t code) {
    fprintf(stderr, "paris: %s failed with code %d\n", what, (int)code);
    exit(1);
}

/* Tokenizes text, growing the buffer when the host says it needs more room. */
static uint32_t *tokenize(int32_t model, const char *text, int32_t *count) {
    uint32_t cap = 64;
    uint32_t *ids = malloc(cap * sizeof *ids);
    int32_t n = realm_tokenize(model, text, strlen(text), ids, cap);
    if (n > (int32_t)cap) {
        cap = (uint32_t)n;
        ids = realloc(ids, cap * sizeof *ids);
        n = realm_tokenize(model, text, strlen(text), ids, cap);
    }
    if (n < 0) fail("realm_tokenize", n);
    *count = n;
    return ids;
}

int main(int argc, char **argv) {
    long max_tokens = DEFAULT_MAX_TOKENS;
    realm_sampler_params sampling = realm_sampler_defaults();
    int first_word = realm_sample_args(argc, argv, &sampling, &max_tokens);
    if (first_word < 0) return 2;
    /* every remaining word is the question */
    char *question = realm_join_words(argc, argv, first_word, "What is the capital of France?");
    if (!question) fail("malloc", 0);

    int32_t model = realm_model_open(MODEL_NAME, strlen(MODEL_NAME));
    if (model < 0) fail("realm_model_open(\"" MODEL_NAME "\")", model);
    realm_model_info info;
    int32_t got = realm_model_info_get(model, &info, sizeof info);
    if (got < 0) fail("realm_model_info_get", got);

    /* The ChatML user turn, with no system turn: the prompt this example's expected output and the
     * benchmarks were recorded with. SmolLM2's own template (realm_chat_apply) adds a default system
     * turn, which makes a longer prompt. */
    const char *head = "<|im_start|>user\n", *tail = "<|im_end|>\n<|im_start|>assistant\n";
    size_t prompt_len = strlen(head) + strlen(question) + strlen(tail);
    char *prompt = malloc(prompt_len + 1);
    snprintf(prompt, prompt_len + 1, "%s%s%s", head, question, tail);
    int32_t n_prompt;
    uint32_t *ids = tokenize(model, prompt, &n_prompt);
    if (n_prompt == 0) fail("tokenizing the prompt", 0);

    /* Stop at EOS, and at <|im_end|> when the vocabulary has it as one token. */
    int32_t n_end;
    uint32_t *end_ids = tokenize(model, "<|im_end|>", &n_end);
    uint32_t im_end = n_end == 1 ? end_ids[0] : info.eos_id;

    uint64_t want = (uint64_t)n_prompt + (uint64_t)max_tokens;
    uint32_t n_ctx = want > info.n_ctx_train ? info.n_ctx_train : (uint32_t)want;
    if ((uint32_t)n_prompt >= n_ctx) {
        fprintf(stderr, "paris: the prompt's %d tokens fill the model's context of %u\n", (int)n_prompt, n_ctx);
        return 1;
    }
    int32_t ctx = realm_context_new(model, n_ctx);
    if (ctx < 0) fail("realm_context_new", ctx);

    float *hidden = malloc((size_t)n_prompt * info.n_embd * sizeof *hidden);
    float *logits = malloc((size_t)info.n_vocab * sizeof *logits);
    /* the sampler's candidates: none when greedy, so greedy guests stay as small as before */
    realm_candidate *scratch = malloc((size_t)realm_sampler_scratch(sampling, info.n_vocab) * sizeof *scratch + 1);
    if (!hidden || !logits || !scratch) fail("malloc", 0);
    realm_sampler sampler;
    realm_sampler_init(&sampler, sampling, scratch, info.n_vocab);

    /* Prefill: the whole prompt through each layer in one call. */
    int32_t rc = realm_embed_tokens(model, ids, (uint32_t)n_prompt, hidden, (size_t)n_prompt * info.n_embd);
    if (rc < 0) fail("realm_embed_tokens", rc);
    for (uint32_t layer = 0; layer < info.n_layer; layer++) {
        rc = realm_forward_layer(ctx, layer, hidden, (uint32_t)n_prompt, 0);
        if (rc < 0) fail("realm_forward_layer", rc);
    }
    rc = realm_compute_logits(model, hidden + (size_t)(n_prompt - 1) * info.n_embd, logits, info.n_vocab);
    if (rc < 0) fail("realm_compute_logits", rc);

    /* Decode greedily, streaming whole UTF-8 characters as they complete. */
    unsigned char pending[256];
    size_t n_pending = 0;
    uint32_t position = (uint32_t)n_prompt;
    int ended = 0;
    long step = 0;
    for (; step < max_tokens && position < n_ctx; step++) {
        uint32_t token = realm_sample(&sampler, logits, info.n_vocab);
        realm_sampler_accept(&sampler, token);
        if (token == info.eos_id || token == im_end) {
            ended = 1;
            break;
        }

        int32_t len = realm_detokenize(model, &token, 1, (char *)pending + n_pending, sizeof pending - n_pending);
        if (len < 0) fail("realm_detokenize", len);
        if ((size_t)len <= sizeof pending - n_pending) n_pending += (size_t)len;
        size_t ready = realm_utf8_complete(pending, n_pending);
        fwrite(pending, 1, ready, stdout);
        fflush(stdout);
        memmove(pending, pending + ready, n_pending - ready);
        n_pending -= ready;

        rc = realm_embed_tokens(model, &token, 1, hidden, info.n_embd);
        if (rc < 0) fail("realm_embed_tokens", rc);
        for (uint32_t layer = 0; layer < info.n_layer; layer++) {
            rc = realm_forward_layer(ctx, layer, hidden, 1, position);
            if (rc < 0) fail("realm_forward_layer", rc);
        }
        rc = realm_compute_logits(model, hidden, logits, info.n_vocab);
        if (rc < 0) fail("realm_compute_logits", rc);
        position++;
    }
    fwrite(pending, 1, n_pending, stdout);
    printf("\n");
    if (!ended) fprintf(stderr, "paris: [stopped after %ld tokens; -n N for more]\n", step);

    realm_context_free(ctx);
    realm_model_close(model);
    free(prompt);
    free(question);
    free(ids);
    free(end_ids);
    free(hidden);
    free(logits);
    free(scratch);
    return 0;
}
