/* realm.h: the realm ABI, version 1.2, for wasm guests that run LLMs on the host.
 *
 * GENERATED from bridge/realm/abi.py by `python -m bridge.realm.header`; do not edit.
 *
 * Every function returns int32_t; a negative value is one of the REALM_E* codes. size_t is the
 * guest's pointer width (u32 on wasm32, u64 on wasm64). Functions with variable-size output return
 * the size they need and write only when it fits the capacity given. A pointer range outside the
 * guest's memory is not an error code: the host traps the guest.
 */
#ifndef REALM_H
#define REALM_H

#include <stddef.h>
#include <stdint.h>

#define REALM_ABI_VERSION 1
#define REALM_ABI_MINOR_VERSION 2 /* 1: realm_chat_apply; 2: realm_model_name */
#define REALM_EINVAL (-1)
#define REALM_EBADF (-2)
#define REALM_ENOENT (-3)
#define REALM_ENOMEM (-4)

/* All u32, in this order; later versions may append fields. */
typedef struct {
    uint32_t n_vocab;
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t n_ff;
    uint32_t n_ctx_train;
    uint32_t bos_id;
    uint32_t eos_id;
} realm_model_info;

#define REALM_IMPORT(name) __attribute__((import_module("env"), import_name(#name)))

/* Opens a model the host offers -> model handle (REALM_ENOMEM with 256 handles open). */
REALM_IMPORT(realm_model_open) int32_t realm_model_open(const char *name, size_t name_len);
/* The index-th offered model's name (`--model` order) -> bytes (no NUL); ENOENT past the last. */
REALM_IMPORT(realm_model_name) int32_t realm_model_name(uint32_t index, char *out, size_t out_cap);
/* Fills a realm_model_info -> sizeof(realm_model_info). */
REALM_IMPORT(realm_model_info_get) int32_t realm_model_info_get(int32_t model, realm_model_info *out, size_t out_size);
/* Closes a model handle (contexts made from it stay usable). */
REALM_IMPORT(realm_model_close) int32_t realm_model_close(int32_t model);
/* A GGUF metadata value as text (numbers in decimal, arrays as JSON) -> bytes (no NUL). */
REALM_IMPORT(realm_model_meta) int32_t realm_model_meta(int32_t model, const char *key, size_t key_len, char *out, size_t out_cap);
/* Tokenizes UTF-8 text, special tokens included -> token count; over 1 MiB is REALM_EINVAL. */
REALM_IMPORT(realm_tokenize) int32_t realm_tokenize(int32_t model, const char *text, size_t text_len, uint32_t *out_ids, uint32_t out_cap);
/* The tokens' bytes (UTF-8 may split between tokens) -> byte count; REALM_EINVAL past INT32_MAX. */
REALM_IMPORT(realm_detokenize) int32_t realm_detokenize(int32_t model, const uint32_t *ids, uint32_t n_ids, char *out, size_t out_cap);
/* The model's chat template applied to a JSON array of {"role", "content"} messages -> byte count. */
REALM_IMPORT(realm_chat_apply) int32_t realm_chat_apply(int32_t model, const char *messages_json, size_t messages_len, int32_t add_generation_prompt, char *out, size_t out_cap);
/* A new context (KV cache) for n_ctx positions -> handle; REALM_ENOMEM past the host memory cap. */
REALM_IMPORT(realm_context_new) int32_t realm_context_new(int32_t model, uint32_t n_ctx);
/* Frees a context and the host memory it held. */
REALM_IMPORT(realm_context_free) int32_t realm_context_free(int32_t context);
/* Token embeddings, n_ids*n_embd floats -> written (or needed) count; REALM_EINVAL past INT32_MAX. */
REALM_IMPORT(realm_embed_tokens) int32_t realm_embed_tokens(int32_t model, const uint32_t *ids, uint32_t n_ids, float *out, size_t out_len);
/* One transformer layer, in place on hidden (n_tokens*n_embd floats) at position.. -> 0. */
REALM_IMPORT(realm_forward_layer) int32_t realm_forward_layer(int32_t context, uint32_t layer, float *hidden, uint32_t n_tokens, uint32_t position);
/* Final norm and output projection of ONE hidden vector -> n_vocab. */
REALM_IMPORT(realm_compute_logits) int32_t realm_compute_logits(int32_t model, const float *hidden, float *out, size_t out_len);
/* A tensor dequantized to floats, by its GGUF name -> element count; REALM_EINVAL past INT32_MAX. */
REALM_IMPORT(realm_get_tensor) int32_t realm_get_tensor(int32_t model, const char *name, size_t name_len, float *out, size_t out_len);
/* Logs a message at level 0 debug, 1 info, 2 warning, 3 error -> 0. */
REALM_IMPORT(realm_log) int32_t realm_log(int32_t level, const char *msg, size_t len);

#endif /* REALM_H */
