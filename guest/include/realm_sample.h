/* realm_sample.h: choosing the next token from a row of logits, in the guest (header-only).
 *
 * Greedy by default; with a temperature above 0, sampling from the softmax after, in order: the
 * repetition penalty on the last tokens chosen, top-k, then top-p (nucleus) and min-p over what is
 * left. The random numbers come from a seeded xorshift64* generator, so a seed gives the same tokens
 * every run, on any host.
 *
 *   realm_sampler s;
 *   realm_sampler_init(&s, params, scratch, n_vocab);    // scratch: realm_sampler_scratch(params, n_vocab)
 *   uint32_t token = realm_sample(&s, logits, n_vocab);                   // logits may be modified
 *   realm_sampler_accept(&s, token);                                      // for the repetition penalty
 */
#ifndef REALM_SAMPLE_H
#define REALM_SAMPLE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    float temperature;    /* 0: greedy (the default) */
    int32_t top_k;        /* keep the k most likely tokens; 0: all */
    float top_p;          /* keep the fewest tokens whose probabilities sum to top_p; 1: all */
    float min_p;          /* drop tokens less likely than min_p times the likeliest; 0: none */
    float repeat_penalty; /* divide the logits of recent tokens by it (multiply when negative); 1: none */
    uint32_t repeat_last_n; /* how many recent tokens the penalty looks at (at most REALM_SAMPLE_RECENT) */
    uint64_t seed;
} realm_sampler_params;

#define REALM_SAMPLE_RECENT 256

typedef struct {
    uint32_t index;
    float value; /* a logit, then a probability */
} realm_candidate;

typedef struct {
    realm_sampler_params params;
    uint64_t state;               /* the generator's */
    realm_candidate *candidates;  /* scratch, n_vocab entries, the caller's */
    uint32_t recent[REALM_SAMPLE_RECENT];
    uint32_t n_recent, next_recent;
} realm_sampler;

static inline realm_sampler_params realm_sampler_defaults(void) {
    realm_sampler_params p = {0.0f, 40, 0.95f, 0.05f, 1.0f, 64, 42};
    return p;
}

/* How many candidates of scratch realm_sample needs: none when greedy, top_k with a top-k, else n_vocab. */
static inline uint32_t realm_sampler_scratch(realm_sampler_params params, uint32_t n_vocab) {
    if (!(params.temperature > 0.0f)) return 0;
    return params.top_k > 0 && (uint32_t)params.top_k < n_vocab ? (uint32_t)params.top_k : n_vocab;
}

static inline void realm_sampler_init(realm_sampler *s, realm_sampler_params params, realm_candidate *scratch,
                                      uint32_t n_vocab) {
    (void)n_vocab;
    s->params = params;
    s->state = params.seed ? params.seed : 0x9E3779B97F4A7C15ull; /* xorshift's state must not be 0 */
    s->candidates = scratch;
    s->n_recent = s->next_recent = 0;
    if (s->params.repeat_last_n > REALM_SAMPLE_RECENT) s->params.repeat_last_n = REALM_SAMPLE_RECENT;
}

/* A uniform float in [0, 1) from xorshift64*. */
static inline float realm_sample_uniform(realm_sampler *s) {
    uint64_t x = s->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->state = x;
    return (float)((x * 0x2545F4914F6CDD1Dull) >> 40) / (float)(1u << 24);
}

/* Records a chosen token, for the repetition penalty. */
static inline void realm_sampler_accept(realm_sampler *s, uint32_t token) {
    if (s->params.repeat_last_n == 0) return;
    s->recent[s->next_recent] = token;
    s->next_recent = (s->next_recent + 1) % s->params.repeat_last_n;
    if (s->n_recent < s->params.repeat_last_n) s->n_recent++;
}

static inline int realm_candidate_before(const realm_candidate *a, const realm_candidate *b) {
    return a->value > b->value || (a->value == b->value && a->index < b->index);
}

/* Sorts c[0..n) by value, largest first (ties by index), with a heap sort: no recursion, no qsort. */
static inline void realm_sort_candidates(realm_candidate *c, uint32_t n) {
    for (uint32_t start = n / 2; start-- > 0;) { /* a heap whose root comes last in the order */
        for (uint32_t i = start;;) {
            uint32_t child = 2 * i + 1;
            if (child >= n) break;
            if (child + 1 < n && realm_candidate_before(&c[child], &c[child + 1])) child++;
            if (!realm_candidate_before(&c[i], &c[child])) break;
            realm_candidate t = c[i];
            c[i] = c[child];
            c[child] = t;
            i = child;
        }
    }
    for (uint32_t end = n; end-- > 1;) {
        realm_candidate t = c[0];
        c[0] = c[end];
        c[end] = t;
        for (uint32_t i = 0;;) {
            uint32_t child = 2 * i + 1;
            if (child >= end) break;
            if (child + 1 < end && realm_candidate_before(&c[child], &c[child + 1])) child++;
            if (!realm_candidate_before(&c[i], &c[child])) break;
            t = c[i];
            c[i] = c[child];
            c[child] = t;
            i = child;
        }
    }
}

/* The next token for these logits (n_vocab of them; the penalty changes them in place). */
static inline uint32_t realm_sample(realm_sampler *s, float *logits, uint32_t n_vocab) {
    const realm_sampler_params *p = &s->params;
    if (p->repeat_penalty != 1.0f && p->repeat_penalty > 0.0f)
        for (uint32_t i = 0; i < s->n_recent; i++) {
            uint32_t t = s->recent[i];
            if (t < n_vocab) logits[t] = logits[t] > 0 ? logits[t] / p->repeat_penalty : logits[t] * p->repeat_penalty;
        }
    uint32_t best = 0;
    for (uint32_t i = 1; i < n_vocab; i++)
        if (logits[i] > logits[best]) best = i;
    if (!(p->temperature > 0.0f)) return best;

    /* top-k: keep the k largest in c[0..n), sorted, by insertion (k small), or sort them all */
    realm_candidate *c = s->candidates;
    uint32_t k = p->top_k > 0 && (uint32_t)p->top_k < n_vocab ? (uint32_t)p->top_k : n_vocab, n = 0;
    if (k < n_vocab) {
        for (uint32_t i = 0; i < n_vocab; i++) {
            realm_candidate x = {i, logits[i]};
            if (n == k && !realm_candidate_before(&x, &c[k - 1])) continue;
            uint32_t j = n < k ? n++ : k - 1;
            while (j > 0 && realm_candidate_before(&x, &c[j - 1])) {
                c[j] = c[j - 1];
                j--;
            }
            c[j] = x;
        }
    } else {
        for (uint32_t i = 0; i < n_vocab; i++) c[i] = (realm_candidate){i, logits[i]};
        n = n_vocab;
        realm_sort_candidates(c, n);
    }
    /* softmax at the temperature, over what is left */
    float top = c[0].value, sum = 0.0f;
    for (uint32_t i = 0; i < n; i++) {
        c[i].value = expf((c[i].value - top) / p->temperature);
        sum += c[i].value;
    }
    /* min-p, then top-p: cut the sorted tail */
    uint32_t keep = n;
    float cumulative = 0.0f;
    for (uint32_t i = 0; i < n; i++) {
        float prob = c[i].value / sum;
        if (i > 0 && prob < p->min_p * (c[0].value / sum)) {
            keep = i;
            break;
        }
        cumulative += prob;
        if (cumulative >= p->top_p) {
            keep = i + 1;
            break;
        }
    }
    float total = 0.0f;
    for (uint32_t i = 0; i < keep; i++) total += c[i].value;
    float r = realm_sample_uniform(s) * total;
    for (uint32_t i = 0; i < keep; i++) {
        r -= c[i].value;
        if (r < 0.0f) return c[i].index;
    }
    return c[keep - 1].index;
}

/* The generation options the examples take, before the words of the prompt:
 *   -n/--max-tokens N, --temp T, --top-k K, --top-p P, --min-p M, --repeat-penalty R, --seed S
 * Fills *params and *max_tokens; returns the index of the first word, or -1 after printing what is wrong
 * to stderr (as `program: ...`). A "--" ends the options. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline int realm_sample_args(int argc, char **argv, realm_sampler_params *params, long *max_tokens) {
    int i = 1;
    while (i < argc && argv[i][0] == '-' && argv[i][1] != '\0') {
        const char *opt = argv[i];
        if (strcmp(opt, "--") == 0) return i + 1;
        if (i + 1 >= argc) {
            fprintf(stderr, "%s: %s needs a value\n", argv[0], opt);
            return -1;
        }
        const char *value = argv[i + 1];
        char *end = NULL;
        double number = strtod(value, &end);
        int ok = end != value && *end == '\0';
        if (strcmp(opt, "-n") == 0 || strcmp(opt, "--max-tokens") == 0) {
            ok = ok && number >= 1 && number <= (1 << 20) && number == (long)number;
            *max_tokens = (long)number;
        } else if (strcmp(opt, "--temp") == 0) {
            ok = ok && number >= 0 && number <= 100;
            params->temperature = (float)number;
        } else if (strcmp(opt, "--top-k") == 0) {
            ok = ok && number >= 0 && number <= 1e9 && number == (long)number;
            params->top_k = (int32_t)number;
        } else if (strcmp(opt, "--top-p") == 0) {
            ok = ok && number > 0 && number <= 1;
            params->top_p = (float)number;
        } else if (strcmp(opt, "--min-p") == 0) {
            ok = ok && number >= 0 && number <= 1;
            params->min_p = (float)number;
        } else if (strcmp(opt, "--repeat-penalty") == 0) {
            ok = ok && number > 0 && number <= 100;
            params->repeat_penalty = (float)number;
        } else if (strcmp(opt, "--seed") == 0) {
            unsigned long long seed = strtoull(value, &end, 10);
            ok = end != value && *end == '\0';
            params->seed = seed;
        } else {
            fprintf(stderr, "%s: unknown option %s (options: -n/--max-tokens, --temp, --top-k, --top-p, --min-p, "
                            "--repeat-penalty, --seed)\n", argv[0], opt);
            return -1;
        }
        if (!ok) {
            fprintf(stderr, "%s: %s %s is out of range or not a number\n", argv[0], opt, value);
            return -1;
        }
        i += 2;
    }
    return i;
}

#endif /* REALM_SAMPLE_H */
